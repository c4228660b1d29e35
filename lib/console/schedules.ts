// The console's schedule forms (enable/disable, run now), free of Next.js plumbing like lib/console/operations.ts:
// each starts with guardMutation (session, same origin, CSRF token).
import type { AdminClient } from "@/lib/db/admin";
import { ScheduleId } from "@/lib/schedules/schema";
import { runScheduleNow, updateSchedule } from "@/lib/schedules/service";
import { guardMutation, type Refusal, type RequestContext } from "./operations";

export type ScheduleFormResult = { ok: true; message: string; taskId?: string } | Refusal;

export async function scheduleFromConsole(ctx: RequestContext, db: AdminClient): Promise<ScheduleFormResult> {
  const guard = guardMutation(ctx);
  if (!guard.ok) return guard;
  const id = ctx.form.get("schedule_id");
  const op = ctx.form.get("op");
  if (typeof id !== "string" || !ScheduleId.safeParse(id).success) return { ok: false, code: "invalid", error: "Unknown schedule." };
  if (op === "enable" || op === "disable") {
    const s = await updateSchedule(db, id, { enabled: op === "enable" });
    if (!s) return { ok: false, code: "invalid", error: "Unknown schedule." };
    return { ok: true, message: op === "enable" ? "Enabled" : "Disabled" };
  }
  if (op === "run") {
    const t = await runScheduleNow(db, id, null, null);
    if (!t) return { ok: false, code: "invalid", error: "Unknown schedule." };
    return { ok: true, message: "Queued", taskId: t.taskId };
  }
  return { ok: false, code: "invalid", error: "Unknown operation." };
}
