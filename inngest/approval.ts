// awaitApproval: a human-in-the-loop pause for any Inngest function (mission pattern 6) that loses no decision
// and never waits past its deadline.
//
//   approval-<stage>-<rev>-request   step.run: record the draft (pending, invisible); the task waits
//   approval-<stage>-<rev>-wait      step.waitForEvent(approval/decision.made, until expires_at)   } reported
//   approval-<stage>-<rev>-publish   step.run: make it visible, then onVisible (notifications)      } together
//   approval-<stage>-<rev>-resolve   step.run: read the decision from the database; on timeout apply the auto action
//
// Why visible only after the wait: Inngest (and the local engine, which reproduces it) only matches events that
// arrive after a wait is registered. The wait and the publish step are started together (Promise.all), so the SDK
// reports them in one response — WaitForEvent + StepPlanned — and the engine registers the wait before it runs any
// planned step: the local engine commits the wait and starts listening in the same transition that schedules the
// step (local/engine/executor.ts, processOps), and Inngest processes WaitForEvent ops as a priority group before
// the others (pkg/execution/executor, opGroups). So no one can decide before the wait can hear it.
//
// Why the database decides anyway: the event is only a wake-up. If it is lost, or an engine misses it, the wait
// times out at the deadline and the resolve step reads the decision that was written first (decide_approval's
// compare-and-set) — it is honoured, just later — and only a still-pending approval gets the auto action.
//
// Rare path: a wake-up with no decision in the database (an event some other app sent by hand) waits again,
// with a `recheck` step in place of `publish` that re-sends the wake-up if a decision landed in between; after
// MAX_ROUNDS such wake-ups it sleeps until the deadline. All step ids are deterministic.
import { NonRetriableError, type GetStepTools, type Inngest } from "inngest";
import { inngest } from "@/inngest/client";
import { approvalDecisionMade, approvalDecisionMadeId } from "@/inngest/events";
import {
  approvalEditedText,
  ApprovalError,
  DEFAULT_APPROVAL_TIMEOUT_SECONDS,
  expireApproval,
  publishApproval,
  requestApproval,
  statusToDecision,
  type ApprovalRow,
  type ApprovalState,
  type AutoAction,
  type Decision,
  type DecidedStatus,
  type DecidedVia,
} from "@/lib/approvals";
import type { Json } from "@/lib/db/database.types";
import { db } from "@/lib/db/server";

type StepTools = GetStepTools<Inngest.Any>;

/**
 * Re-sends the wake-up for a decision already written, under a new id (the original id would be dropped as a
 * repeat). Only the rare recheck path uses it: the first wake-up goes through the outbox with the decision itself
 * (lib/approvals.ts decideApproval). A failure is logged, never thrown: the deadline read honours the decision.
 */
async function sendDecisionEvent(a: { approval_id: string; task_id: string; status: DecidedStatus }, idSuffix: string): Promise<boolean> {
  try {
    await inngest.send(
      approvalDecisionMade.create(
        { approval_id: a.approval_id, task_id: a.task_id, decision: statusToDecision(a.status) },
        { id: `${approvalDecisionMadeId(a.approval_id)}${idSuffix}` },
      ),
    );
    return true;
  } catch (err) {
    console.error(`[approvals] re-sent wake-up for ${a.approval_id} failed (${err instanceof Error ? err.message : String(err)}); the deadline honours the decision`);
    return false;
  }
}

const STAGE_RE = /^[a-z][a-z0-9_]{0,39}$/;
const MAX_ROUNDS = 5;

export interface AwaitApprovalOptions {
  taskId: string;
  /** Which approval of the task: "draft", "analysis", ... (lower case, digits, underscores; part of step ids). */
  stage: string;
  /** 1, 2, ... — a new revision of the same stage is a new approval. */
  revision: number;
  /** What the reviewer sees. Keep it small (≤ 64 KB); put big drafts in artifacts and reference them here. */
  draft: Json;
  /** Default 24 h. */
  timeoutSeconds?: number;
  /** What the deadline does when nobody decided. Default "reject" (status `expired`); "approve" → `approved`. */
  autoAction?: AutoAction;
  /** The clock the approval's times come from. Default the wall clock; tests pass the engine's manual clock. */
  now?: () => Date;
  /**
   * Runs inside the publish step, right after the approval became visible (e.g. send notifications with a link to
   * the review page). It may run again if that step is retried, so make it idempotent (dedupe by approval id). Its
   * errors are logged and recorded in the step's output; they never fail the approval.
   */
  onVisible?: (approval: ApprovalRow) => Promise<void> | void;
}

export interface ApprovalOutcome {
  approval_id: string;
  status: DecidedStatus;
  /** The decision in effect: `expired` (auto-rejected) counts as reject. */
  decision: Decision;
  /** The reviewer's notes: what to change (approve_with_changes) or the feedback (reject). */
  notes: string | null;
  decided_by: string | null;
  decided_via: DecidedVia;
  decided_at: string;
  /** A person approved with their own edit of the draft (approve_with_edit): read it with approvalEditedText. */
  edited: boolean;
}

export function approvalStepIds(stage: string, revision: number) {
  const base = `approval-${stage}-${revision}`;
  return {
    request: `${base}-request`,
    wait: (round = 1) => (round === 1 ? `${base}-wait` : `${base}-wait-${round}`),
    publish: `${base}-publish`,
    recheck: (round: number) => `${base}-recheck-${round}`,
    resolve: (round = 1) => (round === 1 ? `${base}-resolve` : `${base}-resolve-${round}`),
    deadline: `${base}-deadline`,
    resolveFinal: `${base}-resolve-final`,
  };
}

/** Pauses the calling Inngest function until the approval is decided or its deadline applies the auto action. */
export async function awaitApproval(step: StepTools, o: AwaitApprovalOptions): Promise<ApprovalOutcome> {
  if (!STAGE_RE.test(o.stage)) throw new NonRetriableError(`awaitApproval: invalid stage '${o.stage}'`);
  if (!Number.isInteger(o.revision) || o.revision < 1 || o.revision > 1000) {
    throw new NonRetriableError(`awaitApproval: invalid revision ${o.revision}`);
  }
  const now = o.now ?? (() => new Date());
  const ids = approvalStepIds(o.stage, o.revision);

  const requested = await step.run(ids.request, async () => {
    try {
      const a = await requestApproval(
        db(),
        {
          taskId: o.taskId,
          stage: o.stage,
          revision: o.revision,
          draft: o.draft,
          timeoutSeconds: o.timeoutSeconds ?? DEFAULT_APPROVAL_TIMEOUT_SECONDS,
          autoAction: o.autoAction ?? "reject",
        },
        now(),
      );
      // Small on purpose: every memo is resent on every call. The draft stays in the database.
      return { id: a.id, status: a.status, expires_at: a.expires_at };
    } catch (err) {
      // Unknown or finished task, invalid arguments: retrying cannot help.
      if (err instanceof ApprovalError && ["NSP01", "NSP02", "22023", "23514"].includes(err.code)) {
        throw new NonRetriableError(err.message, { cause: err });
      }
      throw err;
    }
  });

  const approvalId = requested.id;
  const expiresAt = new Date(requested.expires_at);

  /** Reads the decision; once the deadline has passed (timedOut), applies the auto action if still pending. */
  const resolve = async (timedOut: boolean) => {
    let at = now();
    // The wait's timeout is the deadline by the engine's clock; the app's clock may lag a little behind it.
    if (timedOut && at < expiresAt) at = expiresAt;
    const state = await expireApproval(db(), approvalId, at);
    if (!state) throw new Error(`approval ${approvalId} disappeared`);
    // Only a person's approve can carry an edit; the text itself stays in the database (step outputs stay small).
    const edited = state.status === "approved" && state.decided_via !== "timeout" && (await approvalEditedText(db(), approvalId)) !== null;
    return { ...pick(state), edited };
  };

  // Decided before this run got here (a re-run of a task whose approval was already decided): no wait.
  if (requested.status !== "pending") return outcome(await step.run(ids.resolve(), () => resolve(false)));

  for (let round = 1; round <= MAX_ROUNDS; round++) {
    // Both promises are created in the same tick, so the SDK reports the wait and the step together.
    const [event] = await Promise.all([
      step.waitForEvent(ids.wait(round), {
        // By name, not the typed EventType: a malformed event some other app sends must not fail this run for
        // good (the SDK validates typed waits). The decision is read from the database anyway.
        event: approvalDecisionMade.name,
        timeout: expiresAt,
        if: `async.data.approval_id == '${approvalId}'`,
      }),
      round === 1
        ? step.run(ids.publish, async () => {
            const row = await publishApproval(db(), approvalId, now());
            let notifyError: string | null = null;
            if (o.onVisible && row.status === "pending") {
              try {
                await o.onVisible(row);
              } catch (err) {
                notifyError = err instanceof Error ? err.message : String(err);
                console.warn(`[approvals] onVisible for ${approvalId} failed (the approval is visible anyway): ${notifyError}`);
              }
            }
            return { visible_at: row.visible_at, notify_error: notifyError };
          })
        : step.run(ids.recheck(round), async () => {
            // A decision that landed between the last read and this wait sent its event too early: send it again.
            const state = await expireApproval(db(), approvalId, now());
            if (state && state.status !== "pending" && state.decided_via !== "timeout") {
              return { resent: await sendDecisionEvent(state as ApprovalState & { status: DecidedStatus }, `-r${round}`) };
            }
            return { resent: false };
          }),
    ]);
    const state = await step.run(ids.resolve(round), () => resolve(event === null));
    if (state.status !== "pending") return outcome(state);
  }

  await step.sleepUntil(ids.deadline, expiresAt);
  return outcome(await step.run(ids.resolveFinal, () => resolve(true)));
}

function pick(s: ApprovalState) {
  return {
    approval_id: s.approval_id,
    status: s.status,
    notes: s.notes,
    decided_by: s.decided_by,
    decided_via: s.decided_via,
    decided_at: s.decided_at,
  };
}

function outcome(s: ReturnType<typeof pick> & { edited?: boolean }): ApprovalOutcome {
  if (s.status === "pending" || !s.decided_via || !s.decided_at) {
    throw new Error(`approval ${s.approval_id} is still pending after its deadline`);
  }
  return {
    approval_id: s.approval_id,
    status: s.status,
    decision: statusToDecision(s.status),
    notes: s.notes,
    decided_by: s.decided_by,
    decided_via: s.decided_via,
    decided_at: s.decided_at,
    edited: s.edited === true,
  };
}
