"use server";
// Webhook source form: enable/disable (lib/console/webhooks.ts does the work after the CSRF guard).
import { refresh } from "next/cache";
import { redirect } from "next/navigation";
import { db } from "@/lib/db/server";
import { requestContext } from "@/lib/console/server";
import { webhookSourceFromConsole } from "@/lib/console/webhooks";

export async function webhookSourceAction(form: FormData): Promise<void> {
  const result = await webhookSourceFromConsole(await requestContext(form), db());
  if (!result.ok && result.code === "unauthenticated") redirect("/login");
  refresh();
}
