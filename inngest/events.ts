// The public event catalog: every event Nightshift sends or reacts to, each with a zod schema. Other apps may
// send these. Names follow `<domain>/<object>.<past-verb>`.
import { eventType } from "inngest";
import { z } from "zod";

/** A task row exists and should run. Sent with id `task-run-<task_id>`, so a duplicate is dropped for 24 h. */
export const taskRunRequested = eventType("task/run.requested", {
  schema: z.object({
    task_id: z.uuid(),
    agent: z.string().min(1),
  }),
});

/** A task reached a terminal status. Sent once per task (id `task-finished-<task_id>`). */
export const taskRunFinished = eventType("task/run.finished", {
  schema: z.object({
    task_id: z.uuid(),
    agent: z.string(),
    status: z.enum(["completed", "failed", "stopped", "rejected", "cancelled"]),
    cost_micros: z.number().int().nonnegative(),
  }),
});

export const taskRunRequestedId = (taskId: string) => `task-run-${taskId}`;
export const taskRunFinishedId = (taskId: string) => `task-finished-${taskId}`;

/**
 * A reviewer decided an approval (lib/approvals.ts). Only a wake-up: it is sent AFTER the decision is written to
 * the database, and the waiting function reads the decision from there (inngest/approval.ts). Sent with id
 * `approval-decision-<approval_id>`. Not sent when the deadline's auto action applies.
 */
export const approvalDecisionMade = eventType("approval/decision.made", {
  schema: z.object({
    approval_id: z.uuid(),
    task_id: z.uuid(),
    decision: z.enum(["approve", "approve_with_changes", "reject"]),
  }),
});

export const approvalDecisionMadeId = (approvalId: string) => `approval-decision-${approvalId}`;
