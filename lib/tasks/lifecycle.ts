// State transitions of a task, each one a Postgres function so that retries and races cannot double-count
// or resurrect a finished task.
import type { AdminClient } from "@/lib/db/admin";
import type { Json } from "@/lib/db/database.types";
import { AGENT_COLUMNS, toAgentConfig, type AgentConfig } from "@/lib/agents/catalog";
import type { TaskMode, TaskStatus } from "./schema";

export interface StartedTask {
  taskId: string;
  prompt: string;
  input: Json | null;
  requireApproval: boolean;
  callbackUrl: string | null;
  mode: TaskMode;
  /** When the result is needed (ISO), or null: mode auto uses a batch only while it leaves room. */
  deadline: string | null;
  /** Who goes first when the model's rate limit is short (-100..100). */
  priority: number;
  /** When the task first started running (ms): the origin of its wall clock. */
  startedAt: number;
  agent: AgentConfig;
}

/** Marks the task running for this run; null when it already finished (a duplicate or late run). */
export async function startTask(db: AdminClient, taskId: string, runId: string): Promise<StartedTask | null> {
  const { data: started, error } = await db.rpc("start_task", { p_task_id: taskId, p_run_id: runId });
  if (error) throw new Error(`start_task failed: ${error.message}`);
  if (!started) return null;
  const { data, error: readError } = await db
    .from("tasks")
    .select(`id,prompt,input,require_approval,callback_url,mode,deadline,priority,started_at,agents(${AGENT_COLUMNS})`)
    .eq("id", taskId)
    .single();
  if (readError) throw new Error(`task read failed: ${readError.message}`);
  const agentRow = data.agents as unknown as Record<string, unknown> | null;
  if (!agentRow) throw new Error(`task ${taskId} has no agent`);
  return {
    taskId,
    prompt: data.prompt,
    input: data.input,
    requireApproval: data.require_approval,
    callbackUrl: data.callback_url,
    mode: data.mode,
    deadline: data.deadline,
    priority: data.priority,
    startedAt: Date.parse(data.started_at ?? new Date().toISOString()),
    agent: toAgentConfig(agentRow),
  };
}

/** Back to `running` after a wait (budget window, approval); false when the task has ended meanwhile. */
export async function resumeTask(db: AdminClient, taskId: string, runId: string): Promise<boolean> {
  const { data, error } = await db.rpc("start_task", { p_task_id: taskId, p_run_id: runId });
  if (error) throw new Error(`start_task failed: ${error.message}`);
  return data === true;
}

/** The task waits for money; says why in status_reason (also refreshed when it was waiting already: a task that
 * waited is marked running only once its call is admitted). */
export async function markWaitingBudget(db: AdminClient, taskId: string, reason: string): Promise<void> {
  const { error } = await db
    .from("tasks")
    .update({ status: "waiting_budget", status_reason: reason })
    .eq("id", taskId)
    .in("status", ["running", "queued", "waiting_budget", "waiting_rate_limit", "waiting_dependency"]);
  if (error) throw new Error(`could not mark task ${taskId} waiting_budget: ${error.message}`);
}

export async function recordStep(
  db: AdminClient,
  step: {
    taskId: string;
    stepId: string;
    kind: "model" | "tool" | "system";
    status: "running" | "completed" | "failed";
    detail?: Json;
    inputTokens?: number;
    outputTokens?: number;
    costMicros?: number;
  },
): Promise<void> {
  const { error } = await db.rpc("record_task_step", {
    p_task_id: step.taskId,
    p_step_id: step.stepId,
    p_kind: step.kind,
    p_status: step.status,
    p_detail: step.detail ?? null,
    p_input_tokens: step.inputTokens ?? 0,
    p_output_tokens: step.outputTokens ?? 0,
    p_cost_micros: step.costMicros ?? 0,
  } as never);
  if (error) throw new Error(`record_task_step failed: ${error.message}`);
}

/** Ends the task; false when it had already ended (the first finisher wins). */
export async function finishTask(
  db: AdminClient,
  taskId: string,
  outcome: { status: Extract<TaskStatus, "completed" | "failed" | "stopped" | "rejected" | "cancelled">; result?: Json; error?: Json; reason?: string },
): Promise<boolean> {
  const { data, error } = await db.rpc("finish_task", {
    p_task_id: taskId,
    p_status: outcome.status,
    p_result: outcome.result ?? null,
    p_error: outcome.error ?? null,
    p_reason: outcome.reason ?? null,
  } as never);
  if (error) throw new Error(`finish_task failed: ${error.message}`);
  return data === true;
}
