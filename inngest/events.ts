// The public event catalog: every event Nightshift sends or reacts to, each with a zod schema. Other apps may
// send these. Names follow `<domain>/<object>.<past-verb>`.
import { eventType } from "inngest";
import { z } from "zod";
import { EVENT } from "@/lib/events";

// The names and ids live in lib/events.ts, because lib/ records these events in the outbox without importing this file.
export {
  approvalDecisionMadeId,
  pipelineRunRequestedId,
  taskRunCancelledId,
  taskRunFinishedId,
  taskRunRequestedId,
} from "@/lib/events";

/** A task row exists and should run. Sent with id `task-run-<task_id>`, so a duplicate is dropped for 24 h. */
export const taskRunRequested = eventType(EVENT.taskRunRequested, {
  schema: z.object({
    task_id: z.uuid(),
    agent: z.string().min(1),
  }),
});

/** A task reached a terminal status. Sent once per task (id `task-finished-<task_id>`). */
export const taskRunFinished = eventType(EVENT.taskRunFinished, {
  schema: z.object({
    task_id: z.uuid(),
    agent: z.string(),
    status: z.enum(["completed", "failed", "stopped", "rejected", "cancelled"]),
    cost_micros: z.number().int().nonnegative(),
  }),
});

/** A task was cancelled (the database already says so); stops its run. Id `task-cancelled-<task_id>`. */
export const taskRunCancelled = eventType(EVENT.taskRunCancelled, {
  schema: z.object({ task_id: z.uuid(), reason: z.string().max(500) }),
});

/**
 * Money may have freed up for an agent's waiting tasks: a reservation settled below its worst case or was released
 * while tasks wait (waiting_budget), or the cap was raised. Only a wake-up: each waiting task asks the database again.
 */
export const budgetAgentFreed = eventType("budget/agent.freed", {
  schema: z.object({ agent_id: z.string().min(1), reason: z.string().max(100) }),
});


/**
 * A reviewer decided an approval (lib/approvals.ts). Only a wake-up: it is sent AFTER the decision is written to
 * the database, and the waiting function reads the decision from there (inngest/approval.ts). Sent with id
 * `approval-decision-<approval_id>`. Not sent when the deadline's auto action applies.
 */
export const approvalDecisionMade = eventType(EVENT.approvalDecisionMade, {
  schema: z.object({
    approval_id: z.uuid(),
    task_id: z.uuid(),
    decision: z.enum(["approve", "approve_with_changes", "reject"]),
  }),
});


// Pipelines (lib/pipelines.ts): research -> analyze -> report, each stage its own function started by the previous
// stage's event. Events carry ids only; every stage's output lives in the database (pipeline_stages.output). Each
// is sent with a stable id (below), so a repeat is dropped for 24 h; a repeat with another id finds its stage
// claimed or finished in the database and does nothing.

/** A pipeline was recorded and should start with research. Id `pipeline-run-<pipeline_id>`. */
export const pipelineRunRequested = eventType(EVENT.pipelineRunRequested, {
  schema: z.object({ pipeline_id: z.uuid() }),
});

/** The research stage completed; its output is stored. Id `pipeline-<pipeline_id>-research-completed`. */
export const pipelineResearchCompleted = eventType("pipeline/research.completed", {
  schema: z.object({ pipeline_id: z.uuid(), task_id: z.uuid().nullable() }),
});

/** The analyze stage completed; its output is stored. Id `pipeline-<pipeline_id>-analysis-completed`. */
export const pipelineAnalysisCompleted = eventType("pipeline/analysis.completed", {
  schema: z.object({ pipeline_id: z.uuid(), task_id: z.uuid().nullable() }),
});

/** The report is stored and the pipeline completed. Id `pipeline-<pipeline_id>-report-ready`. */
export const pipelineReportReady = eventType("pipeline/report.ready", {
  schema: z.object({ pipeline_id: z.uuid(), report_task_id: z.uuid().nullable() }),
});

export const pipelineResearchCompletedId = (pipelineId: string) => `pipeline-${pipelineId}-research-completed`;
export const pipelineAnalysisCompletedId = (pipelineId: string) => `pipeline-${pipelineId}-analysis-completed`;
export const pipelineReportReadyId = (pipelineId: string) => `pipeline-${pipelineId}-report-ready`;

/**
 * A notification was recorded (lib/notifications: notify / announce): deliver it through every configured channel
 * (inngest/functions/deliver-notifications.ts). Sent with id `notification-<sha256 of its dedupe key>`, so a repeat
 * is dropped for 24 h; the sweeper re-sends undelivered ones with a `-sweep-<t>` suffix (the per-channel ledger
 * makes a second delivery round safe).
 */
export const notificationCreated = eventType(EVENT.notificationCreated, {
  schema: z.object({
    notification_id: z.uuid(),
    kind: z.string().min(1),
  }),
});

/**
 * Another app asks for work (an app event, the HTTP API's twin): inngest/functions/task-requested.ts records the task
 * (idempotent on `idempotency_key`, else on the event's own id) and runs it. A payload that does not fit ends the
 * run as a failure naming the field, and the operator is told — never a silent drop.
 */
export const agentTaskRequestedSchema = z.strictObject({
  agent: z.string().regex(/^[a-z][a-z0-9_-]{1,39}$/, "agent must be an agent id such as research, content or outreach"),
  prompt: z.string().trim().min(1, "prompt must not be empty").max(100_000, "prompt must be at most 100000 characters"),
  input: z.record(z.string(), z.unknown()).optional(),
  mode: z.enum(["now", "batch", "auto"]).optional(),
  deadline: z.iso.datetime({ offset: true, message: "deadline must be an ISO 8601 date-time with a time zone" }).optional(),
  require_approval: z.boolean().optional(),
  callback_url: z.url({ protocol: /^https?$/, message: "callback_url must be an http(s) URL" }).max(2048).optional(),
  idempotency_key: z
    .string()
    .min(1)
    .max(200, "idempotency_key must be at most 200 characters")
    .regex(/^[\x21-\x7e]+$/, "idempotency_key must be printable ASCII without spaces")
    .optional(),
});
export const agentTaskRequested = eventType("agent/task.requested", { schema: agentTaskRequestedSchema });

/**
 * A slot of the agent was handed to this task (lib/agents/slots.ts): wakes the task's run, which waits in its agent's
 * line (inngest/waits.ts waitForSlot). Recorded in the outbox by whoever gave the slot back, in the same transaction;
 * id `slot-<task_id>-<n>`.
 */
export const agentSlotReleased = eventType(EVENT.agentSlotReleased, {
  schema: z.object({ agent_id: z.string().min(1), task_id: z.uuid() }),
});
