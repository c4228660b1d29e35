// Cancels a task: the database decides and cleans up, and records `task/run.cancelled` (which stops the run) in
// the outbox in the same transaction (cancel_task_announced); the relay sends it. Until it arrives, the run still
// stops at its next model turn, which checks the task first.
import type { AdminClient } from "@/lib/db/admin";
import { kickOutboxRelay } from "@/lib/outbox";
import type { TaskStatus } from "./schema";

export type CancelOutcome =
  | { outcome: "cancelled"; status: "cancelled" }
  | { outcome: "already_finished"; status: TaskStatus }
  | { outcome: "not_found" };

export async function cancelTask(
  db: AdminClient,
  taskId: string,
  reason: string,
  actor: string,
  opts: { relay?: "background" | "none" } = {},
): Promise<CancelOutcome> {
  const { data, error } = await db.rpc("cancel_task_announced", { p_task_id: taskId, p_reason: reason, p_actor: actor });
  if (error) throw new Error(`cancel_task_announced failed: ${error.message}`);
  const row = data?.[0];
  if (!row || row.outcome === "not_found") return { outcome: "not_found" };
  if (row.outcome === "already_finished") return { outcome: "already_finished", status: row.status as TaskStatus };
  if (opts.relay !== "none") void kickOutboxRelay({ wakeUp: true }); // a cancellation acts on a run under way
  return { outcome: "cancelled", status: "cancelled" };
}

/** True when the task has ended (completed, failed, stopped, rejected or cancelled). */
export async function taskHasEnded(db: AdminClient, taskId: string): Promise<boolean> {
  const { data, error } = await db.from("tasks").select("finished_at").eq("id", taskId).maybeSingle();
  if (error) throw new Error(`task read failed: ${error.message}`);
  return !data || data.finished_at !== null;
}
