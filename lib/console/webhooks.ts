// The console's webhook-source form (enable/disable), free of Next.js plumbing like lib/console/schedules.ts: it
// starts with guardMutation (session, same origin, CSRF token) and changes the source through the same audited
// function as PATCH /api/webhook-sources/:name, with the actor `console:operator`.
import type { AdminClient } from "@/lib/db/admin";
import { ApiError } from "@/lib/http/errors";
import { SourceName, saveWebhookSource } from "@/lib/webhooks/sources";
import { guardMutation, type Refusal, type RequestContext } from "./operations";

export type SourceFormResult = { ok: true; message: string } | Refusal;

export async function webhookSourceFromConsole(ctx: RequestContext, db: AdminClient): Promise<SourceFormResult> {
  const guard = guardMutation(ctx);
  if (!guard.ok) return guard;
  const name = ctx.form.get("source");
  const op = ctx.form.get("op");
  if (typeof name !== "string" || !SourceName.safeParse(name).success) return { ok: false, code: "invalid", error: "Unknown webhook source." };
  if (op !== "enable" && op !== "disable") return { ok: false, code: "invalid", error: "Unknown operation." };
  try {
    await saveWebhookSource(db, name, { enabled: op === "enable" }, "console:operator", false);
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) return { ok: false, code: "invalid", error: "Unknown webhook source." };
    throw e;
  }
  return { ok: true, message: op === "enable" ? "Enabled" : "Disabled" };
}
