"use server";
// Schedule forms: enable/disable and run now (lib/console/schedules.ts does the work after the CSRF guard).
import { refresh } from "next/cache";
import { redirect } from "next/navigation";
import { db } from "@/lib/db/server";
import { scheduleFromConsole } from "@/lib/console/schedules";
import { requestContext } from "@/lib/console/server";

export async function scheduleAction(form: FormData): Promise<void> {
  const result = await scheduleFromConsole(await requestContext(form), db());
  if (!result.ok && result.code === "unauthenticated") redirect("/login");
  if (result.ok && result.taskId) redirect(`/tasks/${result.taskId}`);
  refresh();
}
