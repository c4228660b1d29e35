// The names and stable ids of the events `lib/` records in the outbox (lib/outbox.ts). The catalog with their
// schemas is inngest/events.ts, which builds on these names; lib/ cannot import it (the arrows go app -> inngest
// -> lib), so the names live here. A stable id makes Inngest drop a repeat of the same event for 24 h.
export const EVENT = {
  taskRunRequested: "task/run.requested",
  taskRunCancelled: "task/run.cancelled",
  taskRunFinished: "task/run.finished",
  approvalDecisionMade: "approval/decision.made",
  pipelineRunRequested: "pipeline/run.requested",
  notificationCreated: "notification/created",
  agentSlotReleased: "agent/slot.released",
} as const;
export type EventName = (typeof EVENT)[keyof typeof EVENT];

export const taskRunRequestedId = (taskId: string) => `task-run-${taskId}`;
export const taskRunCancelledId = (taskId: string) => `task-cancelled-${taskId}`;
export const taskRunFinishedId = (taskId: string) => `task-finished-${taskId}`;
export const approvalDecisionMadeId = (approvalId: string) => `approval-decision-${approvalId}`;
export const pipelineRunRequestedId = (pipelineId: string) => `pipeline-run-${pipelineId}`;
