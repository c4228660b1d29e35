// Cancels a task: the database decides and cleans up (cancel_task), then `task/run.cancelled` stops the run.
// If that event cannot be sent, the run still stops at its next model turn, which checks the task first.
import { inngest } from "@/inngest/client";
import { taskRunCancelled, taskRunCancelledId } from "@/inngest/events";
import type { AdminClient } from "@/lib/db/admin";
import type { TaskStatus } from "./schema";

export type CancelOutcome =
  | { outcome: "cancelled"; status: "cancelled"; eventSent: boolean }
  | { outcome: "already_finished"; status: TaskStatus }
  | { outcome: "not_found" };

export async function cancelTask(db: AdminClient, taskId: string, reason: string, actor: string): Promise<CancelOutcome> {
  const { data, error } = await db.rpc("cancel_task", { p_task_id: taskId, p_reason: reason, p_actor: actor });
  if (error) throw new Error(`cancel_task failed: ${error.message}`);
  const row = data?.[0];
  if (!row || row.outcome === "not_found") return { outcome: "not_found" };
  if (row.outcome === "already_finished") return { outcome: "already_finished", status: row.status as TaskStatus };
  let eventSent = false;
  for (let attempt = 1; attempt <= 3 && !eventSent; attempt++) {
    try {
      await inngest.send(taskRunCancelled.create({ task_id: taskId, reason: reason.slice(0, 500) }, { id: taskRunCancelledId(taskId) }));
      eventSent = true;
    } catch (err) {
      console.error(`[tasks] cancel event for ${taskId} not sent (attempt ${attempt}):`, err instanceof Error ? err.message : err);
    }
  }
  return { outcome: "cancelled", status: "cancelled", eventSent };
}

/** True when the task has ended (completed, failed, stopped, rejected or cancelled). */
export async function taskHasEnded(db: AdminClient, taskId: string): Promise<boolean> {
  const { data, error } = await db.from("tasks").select("finished_at").eq("id", taskId).maybeSingle();
  if (error) throw new Error(`task read failed: ${error.message}`);
  return !data || data.finished_at !== null;
}
