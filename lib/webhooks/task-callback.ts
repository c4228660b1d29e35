// A finished task's callback: the body every attempt sends, and the summary `task/run.finished` carries. Every
// terminal status (completed, stopped, rejected, failed, cancelled) is announced the same way, once.
import type { AdminClient } from "@/lib/db/admin";
import type { Json } from "@/lib/db/database.types";
import { TERMINAL_STATUSES, type TaskStatus } from "@/lib/tasks/schema";
import { openDelivery } from "./outbound";

export const TASK_FINISHED = "task.finished";
/** The callback's webhook-id: one per task, so a receiver that sees it twice knows it is the same delivery. */
export const taskCallbackMessageId = (taskId: string) => `msg_task_finished_${taskId}`;

export type TerminalStatus = "completed" | "failed" | "stopped" | "rejected" | "cancelled";

export interface EndedTask {
  [key: string]: Json;
  task_id: string;
  agent: string;
  status: TerminalStatus;
  cost_micros: number;
}

/** The task's terminal summary, or null while it has not ended. */
export async function endedTask(db: AdminClient, taskId: string): Promise<EndedTask | null> {
  const { data, error } = await db.from("tasks").select("id,agent_id,status,cost_micros").eq("id", taskId).maybeSingle();
  if (error) throw new Error(`task read failed: ${error.message}`);
  if (!data || !TERMINAL_STATUSES.includes(data.status as TaskStatus)) return null;
  return { task_id: data.id, agent: data.agent_id, status: data.status as TerminalStatus, cost_micros: Number(data.cost_micros) };
}

/** Opens the callback delivery of an ended task that has a callback_url; null when there is nothing to send. */
export async function openTaskCallback(db: AdminClient, taskId: string): Promise<{ id: string } | null> {
  const { data: t, error } = await db
    .from("tasks")
    .select("id,agent_id,status,status_reason,result,error,cost_micros,callback_url,finished_at")
    .eq("id", taskId)
    .maybeSingle();
  if (error) throw new Error(`task read failed: ${error.message}`);
  if (!t || !t.callback_url || !TERMINAL_STATUSES.includes(t.status as TaskStatus)) return null;
  const d = await openDelivery(db, {
    messageId: taskCallbackMessageId(taskId),
    taskId,
    kind: "callback",
    eventType: TASK_FINISHED,
    url: t.callback_url,
    payload: {
      type: TASK_FINISHED,
      timestamp: t.finished_at ?? new Date().toISOString(),
      task_id: t.id,
      status: t.status,
      status_reason: t.status_reason,
      agent: t.agent_id,
      result: t.result,
      error: t.error,
      cost_micros: Number(t.cost_micros),
    },
  });
  return { id: d.id };
}
