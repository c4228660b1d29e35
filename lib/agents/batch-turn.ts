// Batch-mode model turns: a task with `mode: "batch"` sends each model call through the Message Batches API,
// which Anthropic bills at half price (BATCH_DISCOUNT) in exchange for latency — most batches end within an hour,
// every batch within 24 hours. Overnight work can afford that.
//
// One turn is three kinds of durable step instead of one:
//   submit  slot + worst-case reservation (like runModelTurn), then create a one-request batch — at most once per
//           (task, turn, submission): the batch id is recorded in the side-effect ledger before the step returns,
//           so a retried or replayed submit step finds it instead of creating (and paying for) a second batch.
//   poll    a durable sleep with backoff (30 s doubling to 10 min), on the engine's clock.
//   check   retrieve the batch; once it has ended, read its one result line, settle the reservation at the
//           discounted actual cost, put the turn on the timeline and return runModelTurn's `answered` outcome.
// awaitBatchTurn composes poll/check (and a resubmission after a retriable failure) out of Inngest steps, so
// the agent loop and this module's tests run the same code.
//
// Money: the reservation is the full-price worst case (an upper bound must hold whatever is billed); the settle
// is the real, discounted cost. A retriable failure (overloaded, rate limited, expired) keeps the reservation for
// the resubmission; a final one (invalid request, canceled by someone else, given up) gives it back.
import type Anthropic from "@anthropic-ai/sdk";
import { NonRetriableError } from "inngest";
import { acquireBreaker, dependency, recordBreaker } from "@/lib/breakers";
import { releaseBudget, reserveBudget, worstCaseMicros, writeOffLostCalls } from "@/lib/budget";
import { classifyFailure } from "@/lib/failures";
import type { AdminClient } from "@/lib/db/admin";
import { env } from "@/lib/env";
import { anthropic } from "@/lib/llm/anthropic";
import { wellFormedMessage } from "@/lib/llm/answer";
import { classifyModelError } from "@/lib/llm/errors";
import { runOnce } from "@/lib/side-effects";
import { recordStep } from "@/lib/tasks/lifecycle";
import { buildRequest } from "./request";
import { acquireSlot, releaseSlot } from "./slots";
import { WEB_SEARCH_MAX_USES, WEB_SEARCH_MICROS_PER_USE, countInputTokens, settleAnsweredTurn, type TurnArgs, type TurnOutcome } from "./turn";

/** The side-effect ledger's tool name for batch creations (side_effects.tool). */
export const BATCH_LEDGER_TOOL = "message_batch";

/** First poll after 30 s, doubling to one every 10 minutes. */
export const FIRST_POLL_SECONDS = 30;
export const MAX_POLL_SECONDS = 600;
/** Anthropic ends every batch within 24 h of its creation (unfinished requests `expired`); an hour of grace on
 * top. A batch still not ended after this much polling is cancelled and the turn fails. */
export const MAX_BATCH_WAIT_SECONDS = 25 * 3600;
/** Submissions of one turn: the first plus two after retriable failures (an expired batch is a day lost). */
export const MAX_BATCH_SUBMISSIONS = 3;

export type AnsweredTurn = Extract<TurnOutcome, { kind: "answered" }>;
type Busy = Extract<TurnOutcome, { kind: "busy" }>;
type BudgetRefused = Extract<TurnOutcome, { kind: "budget_refused" }>;
type DependencyDown = Extract<TurnOutcome, { kind: "dependency_down" }>;

/** Who the Batches API's failures are said of (lib/failures.ts). */
const BATCHES = "Claude's Message Batches API";

/** What the check step needs to find the turn's batch again. Small: it is memoized with every step. */
export type BatchTicket = {
  turn_id: string;
  batch_id: string;
  custom_id: string;
  /** The budget ledger's step key of the turn's reservation (`turn-3`, or `turn-3#attempt-2`). */
  reservation_key: string;
  /** 1 for the first batch of the turn, 2+ for resubmissions after a retriable failure. */
  submission: number;
  /** When the batch was created (ms, from the ledger: identical on every replay). */
  submitted_at: number;
};

export type BatchSubmitOutcome = ({ kind: "submitted" } & BatchTicket) | Busy | BudgetRefused | DependencyDown;

export type BatchCheckOutcome =
  | { kind: "pending"; status: "in_progress" | "canceling" | "unreachable"; error?: string }
  | AnsweredTurn
  /** The batch ended without an answer for a reason that may pass: submit the turn again. */
  | { kind: "retry"; reason: string }
  /** (After our own cancel for a deadline) the request was canceled before it ran: nothing billed, the reservation
   * released; the turn runs directly. */
  | { kind: "canceled"; reason: string };

/** The answered outcome of a batch turn, with how long it queued at Anthropic (not the agent's working time). */
export type BatchAnswered = AnsweredTurn & { batch: { batch_id: string; submissions: number; polls: number; wait_ms: number } };

/** A batch turn given up for the task's deadline (mode auto): its batch was cancelled before its request ran, so
 * the turn must run directly. wait_ms: how long it queued at Anthropic. */
export type BatchCancelled = { kind: "cancelled"; reason: string; batch_id: string; wait_ms: number };

export interface SubmitArgs extends TurnArgs {
  /** Which submission of this turn (default 1). A resubmission reuses the turn's reservation. */
  submission?: number;
  /** The reservation to reuse on a resubmission (the ticket's reservation_key). */
  reservationKey?: string;
}

/**
 * Reserves the turn's worst case and creates its batch, at most once per (task, turn, submission).
 * Returns the ticket, or `busy` / `budget_refused` exactly like runModelTurn (the loop waits and calls again).
 */
export async function submitBatchTurn(db: AdminClient, args: SubmitArgs): Promise<BatchSubmitOutcome> {
  const { agent } = args;
  const submission = args.submission ?? 1;
  // The slot gates the submission like a synchronous turn; it is given back once the batch is queued (below).
  const slot = await acquireSlot(db, { agentId: agent.id, taskId: args.taskId, leaseSeconds: 300, now: args.now });
  if (!slot.ok) return { kind: "busy", holders: slot.holders, limit: slot.limit };
  // The Batches API's breaker (one for the API, whatever the model): while it is open nothing is reserved or sent,
  // and the run waits durably for the next probe instead of burning a retry (run-task, like a direct turn).
  const dep = dependency.claudeBatches();
  const gate = await acquireBreaker(db, dep, args.now);
  if (gate.role === "refused") {
    await releaseSlot(db, args.taskId);
    return { kind: "dependency_down", dependency: dep, retry_at: gate.retryAt, last_error: gate.lastError, refused_at: args.now.getTime() };
  }
  const params = buildRequest(agent, args.messages, { serverWebSearch: args.serverWebSearch });

  const needed = worstCaseMicros(agent.model, {
    inputTokens: await countInputTokens(params),
    maxTokens: agent.max_tokens,
    extraMicros: args.serverWebSearch ? WEB_SEARCH_MICROS_PER_USE * WEB_SEARCH_MAX_USES : 0,
  });
  // Full price: the batch discount is applied at settle, when the real usage is known.
  let reservationKey = args.reservationKey ?? args.turnId;
  let r = await reserveBudget(db, { agentId: agent.id, taskId: args.taskId, stepId: reservationKey, model: agent.model, amountMicros: needed, now: args.now });
  if (r.ok && r.status === "settled") {
    // This turn's answer was already paid for (only possible if a replay diverged): a new call is a new expense.
    reservationKey = `${reservationKey}#attempt-${args.attempt}`;
    r = await reserveBudget(db, { agentId: agent.id, taskId: args.taskId, stepId: reservationKey, model: agent.model, amountMicros: needed, now: args.now });
  }
  if (!r.ok) {
    return {
      kind: "budget_refused",
      needed_micros: needed,
      remaining_micros: r.remainingMicros,
      cap_micros: r.capMicros,
      window_start: r.windowStart,
      next_window_at: r.nextWindowAt,
      never_fits: r.neverFits,
      refused_at: args.now.getTime(),
      refusal: r.refusal ?? "settled",
      settled_micros: r.settledMicros,
      in_flight_micros: r.inFlightMicros,
    };
  }

  const customId = batchCustomId(args.taskId, args.turnId, submission);
  let ticket: BatchTicket;
  try {
    const { result } = await runOnce(
      db,
      {
        taskId: args.taskId,
        toolUseId: batchLedgerKey(args.turnId, submission),
        tool: BATCH_LEDGER_TOOL,
        request: { custom_id: customId, params },
        record: { custom_id: customId, model: agent.model, submission, reservation_key: reservationKey },
        // Longer than the create call may take, so no concurrent duplicate of this step can re-claim it meanwhile.
        leaseSeconds: Math.ceil(env().NIGHTSHIFT_MODEL_TIMEOUT_MS / 1000) + 60,
      },
      async () => {
        const batch = await anthropic().messages.batches.create({ requests: [{ custom_id: customId, params }] });
        const t: BatchTicket = {
          turn_id: args.turnId,
          batch_id: batch.id,
          custom_id: customId,
          reservation_key: reservationKey,
          submission,
          submitted_at: Date.now(),
        };
        return t;
      },
    );
    ticket = result;
  } catch (err) {
    const classified = classifyModelError(err);
    const failure = classifyFailure(classified, BATCHES);
    // The breaker never adds a failure of its own: if it cannot be recorded, the step's retries apply as before.
    const breaker = await recordBreaker(db, dep, { success: false, outage: failure.outage, error: failure.summary }, args.now).catch(() => null);
    if (classified instanceof NonRetriableError) {
      await releaseBudget(db, { taskId: args.taskId, stepId: reservationKey, now: args.now });
      await recordStep(db, {
        taskId: args.taskId,
        stepId: args.turnId,
        kind: "model",
        status: "failed",
        detail: { model: agent.model, mode: "batch", error: classified.message },
      });
    } else if (failure.outage && breaker && breaker.state !== "closed" && breaker.nextProbeAt) {
      // This failure opened the breaker (or met it open): wait for the probe, no attempt burned. A first submission
      // holds no money while it waits; a resubmission keeps the turn's reservation for when it goes out.
      if (!args.reservationKey) await releaseBudget(db, { taskId: args.taskId, stepId: reservationKey, now: args.now });
      await releaseSlot(db, args.taskId);
      return { kind: "dependency_down", dependency: dep, retry_at: breaker.nextProbeAt, last_error: failure.summary, refused_at: args.now.getTime() };
    }
    throw classified;
  }
  await recordBreaker(db, dep, { success: true }, args.now);
  if (ticket.reservation_key !== reservationKey) {
    // Replayed from the ledger under an earlier key: that reservation is the live one; ours was not needed.
    await releaseBudget(db, { taskId: args.taskId, stepId: reservationKey, now: args.now });
  }

  // A task whose turn is queued at Anthropic does not hold one of the agent's slots: holding one for up to a day
  // would serialize the agent's whole night, and the Batches API queues the load itself.
  await releaseSlot(db, args.taskId);
  await recordStep(db, {
    taskId: args.taskId,
    stepId: args.turnId,
    kind: "model",
    status: "running",
    detail: { model: agent.model, mode: "batch", batch_id: ticket.batch_id, submission: ticket.submission, processing_status: "in_progress" },
  });
  return { kind: "submitted", ...ticket };
}

/**
 * Looks at the turn's batch. While it runs: `pending`. Ended and succeeded: settles at the batch price, records
 * the turn and returns runModelTurn's `answered` outcome. Ended without an answer: `retry` when submitting again
 * may help (overloaded, rate limited, server error, expired); otherwise releases the reservation and throws a
 * NonRetriableError (invalid request, canceled outside the run, deleted). Idempotent: a repeated check of an
 * ended batch re-reads the same result, and settle/record pay and count once.
 */
export async function checkBatchTurn(db: AdminClient, args: TurnArgs & { ticket: BatchTicket; afterCancel?: boolean }): Promise<BatchCheckOutcome> {
  const { agent, ticket } = args;
  const started = Date.now();
  const fail = async (message: string): Promise<never> => {
    await releaseBudget(db, { taskId: args.taskId, stepId: ticket.reservation_key, now: args.now });
    await recordStep(db, {
      taskId: args.taskId,
      stepId: args.turnId,
      kind: "model",
      status: "failed",
      detail: { model: agent.model, mode: "batch", batch_id: ticket.batch_id, error: message },
    });
    throw new NonRetriableError(message);
  };

  // While the Batches API's breaker is open, a poll does not call it: the batch runs on at Anthropic, and the next
  // poll (the poll loop is the retry loop) asks again.
  const dep = dependency.claudeBatches();
  const gate = await acquireBreaker(db, dep, args.now);
  if (gate.role === "refused") return { kind: "pending", status: "unreachable", error: `circuit_open: ${dep} is down; next probe at ${gate.retryAt}` };
  let line: Anthropic.Messages.MessageBatchIndividualResponse | undefined;
  try {
    const batch = await anthropic().messages.batches.retrieve(ticket.batch_id);
    if (batch.processing_status !== "ended") {
      await recordBreaker(db, dep, { success: true }, args.now);
      return { kind: "pending", status: batch.processing_status };
    }
    for await (const item of await anthropic().messages.batches.results(ticket.batch_id)) {
      if (item.custom_id === ticket.custom_id) line = item;
    }
  } catch (err) {
    const classified = classifyModelError(err);
    const failure = classifyFailure(classified, BATCHES);
    await recordBreaker(db, dep, { success: false, outage: failure.outage, error: failure.summary }, args.now).catch(() => null);
    if (classified instanceof NonRetriableError) return fail(`batch ${ticket.batch_id}: ${classified.message}`);
    // Unreachable or overloaded right now: the next poll asks again (the poll loop is the retry loop).
    return { kind: "pending", status: "unreachable", error: classified.message };
  }
  await recordBreaker(db, dep, { success: true }, args.now);
  if (!line) throw new Error(`batch ${ticket.batch_id} ended without a result for ${ticket.custom_id}`);

  const result = line.result;
  if (args.afterCancel && (result.type === "canceled" || result.type === "expired" || (result.type === "errored" && RETRIABLE_ERROR_TYPES.has(result.error.error.type)))) {
    // We cancelled it for the deadline and its request had not run (or failed in a way a direct call may not):
    // nothing billed; the money goes back and the turn runs directly.
    await releaseBudget(db, { taskId: args.taskId, stepId: ticket.reservation_key, now: args.now });
    return { kind: "canceled", reason: `batch ${ticket.batch_id} cancelled for the deadline (${result.type})` };
  }
  if (result.type === "expired") return { kind: "retry", reason: `batch ${ticket.batch_id} expired before it was processed` };
  if (result.type === "canceled") return fail(`batch ${ticket.batch_id} was canceled`);
  if (result.type === "errored") {
    const type = result.error.error.type;
    const message = `batch ${ticket.batch_id}: ${type}: ${result.error.error.message}`;
    if (RETRIABLE_ERROR_TYPES.has(type)) return { kind: "retry", reason: message };
    return fail(message);
  }

  let message: Anthropic.Message;
  try {
    message = wellFormedMessage(result.message);
  } catch (err) {
    // A succeeded line whose message is not one (no usage, counts that are not counts, another shape): the provider
    // billed the call, so — as the direct path does with a corrupted 200 — the reservation is charged as an
    // estimate (at the batch price), and the turn is asked again: a new submission under a fresh reservation key
    // (the settled one makes submitBatchTurn take `<key>#attempt-n`). Re-reading the line would give the same
    // answer, and giving the reservation back would charge a billed call nothing. Idempotent: a repeated check
    // finds the reservation settled and writes off nothing more.
    const params = buildRequest(agent, args.messages, { serverWebSearch: args.serverWebSearch });
    await writeOffLostCalls(db, {
      taskId: args.taskId,
      turnId: ticket.reservation_key,
      model: agent.model,
      inputTokens: await countInputTokens(params),
      maxTokens: agent.max_tokens,
      now: args.now,
      batch: true,
    });
    const reason = `batch ${ticket.batch_id}: answer_corrupted: ${(err as Error).message}`;
    await recordStep(db, {
      taskId: args.taskId,
      stepId: args.turnId,
      kind: "model",
      status: "running",
      detail: { model: agent.model, mode: "batch", batch_id: ticket.batch_id, submission: ticket.submission, error: reason },
    });
    return { kind: "retry", reason };
  }
  return settleAnsweredTurn(db, args, {
    message,
    reservationKey: ticket.reservation_key,
    started,
    batch: true,
    detail: {
      mode: "batch",
      batch_id: ticket.batch_id,
      submission: ticket.submission,
      batch_wait_ms: Math.max(0, Date.now() - ticket.submitted_at),
    },
  });
}


/** Gives a turn up: cancels its batch if it is still running, releases the reservation, fails for good. */
export async function abandonBatchTurn(db: AdminClient, args: { taskId: string; turnId: string; ticket: BatchTicket; reason: string; now?: Date }): Promise<never> {
  await cancelBatch(args.ticket.batch_id);
  await releaseBudget(db, { taskId: args.taskId, stepId: args.ticket.reservation_key, now: args.now });
  await recordStep(db, {
    taskId: args.taskId,
    stepId: args.turnId,
    kind: "model",
    status: "failed",
    detail: { mode: "batch", batch_id: args.ticket.batch_id, error: args.reason },
  });
  throw new NonRetriableError(args.reason);
}

/** Cancels every batch of the task that may still be running (a run that failed or was cancelled): best effort,
 * returns how many cancel requests were accepted. Reservations are the caller's (releaseOpenReservations). */
export async function cancelOpenBatches(db: AdminClient, taskId: string): Promise<number> {
  const { data, error } = await db.from("side_effects").select("result").eq("task_id", taskId).eq("tool", BATCH_LEDGER_TOOL).eq("status", "completed");
  if (error) throw new Error(`reading the batches of task ${taskId} failed: ${error.message}`);
  let cancelled = 0;
  for (const row of data ?? []) {
    const id = (row.result as { batch_id?: unknown } | null)?.batch_id;
    if (typeof id === "string" && (await cancelBatch(id))) cancelled += 1;
  }
  return cancelled;
}

/** The sleep before poll `k` (1-based) of one submission: 30 s, 60 s, 120 s, … capped at 10 min. */
export function pollDelaySeconds(k: number): number {
  return Math.min(FIRST_POLL_SECONDS * 2 ** Math.max(0, k - 1), MAX_POLL_SECONDS);
}

/** How many polls one submission gets before it is given up (MAX_BATCH_WAIT_SECONDS of sleeps): 155. */
export const MAX_POLLS_PER_SUBMISSION = (() => {
  let k = 0;
  for (let slept = 0; slept < MAX_BATCH_WAIT_SECONDS; ) slept += pollDelaySeconds(++k);
  return k;
})();

/** The parts of Inngest's `step` that awaitBatchTurn uses. */
export interface BatchStepTools {
  run(id: string, fn: () => Promise<unknown>): Promise<unknown>;
  sleep(id: string, duration: string): Promise<unknown>;
  sleepUntil(id: string, time: string): Promise<unknown>;
}

export interface BatchTurnOps {
  check(ticket: BatchTicket, opts?: { afterCancel?: boolean }): Promise<BatchCheckOutcome>;
  /** `notBefore` (ms): after a breaker wait, the run's clock is at least there (the breaker's clock must not lag). */
  resubmit(ticket: BatchTicket, submission: number, notBefore?: number): Promise<BatchSubmitOutcome>;
  abandon(ticket: BatchTicket, reason: string): Promise<never>;
}

/** A deadline the batch must not outlive (mode auto): at `cancelAt` (ms) a batch still running is cancelled. */
export interface BatchDeadline {
  cancelAt: number;
  cancel(ticket: BatchTicket): Promise<unknown>;
}

/** Polls of a batch being cancelled (`canceling` → `ended`): 5 s doubling to a minute, at most this many. */
export const MAX_CANCEL_POLLS = 12;

/**
 * Waits for a submitted batch turn as durable steps, from the ticket of its first submission:
 *   `<turn>-poll-<k>` sleep (backoff) → `<turn>-check-<k>` until answered;
 *   after a retriable failure `<turn>-submit-<n>` (n = 2..MAX_BATCH_SUBMISSIONS), polling again from 30 s;
 *   after MAX_BATCH_WAIT_SECONDS of polling one submission, or retriable failures on every submission,
 *   `<turn>-give-up` cancels the batch, releases the reservation and fails the run (NonRetriableError).
 * With a deadline (mode auto): no poll sleeps past `cancelAt`; a batch still running then is cancelled
 * (`<turn>-cancel`) and polled until it has ended (`<turn>-cancel-poll-<c>`, `<turn>-cancel-check-<c>`): a request
 * that had run before the cancel was billed and its answer is used (settled at the batch price); one that had not is
 * `cancelled` — the caller runs the turn directly.
 * Step ids are deterministic: k counts polls over the whole turn, and the clock that places them is the ticket's
 * submission time plus the sleeps so far (memoized figures). Worst case per submission:
 * MAX_POLLS_PER_SUBMISSION × 2 steps (a typical batch, ended within the hour, takes about 20).
 */
export async function awaitBatchTurn(step: BatchStepTools, first: BatchTicket, ops: BatchTurnOps): Promise<BatchAnswered>;
export async function awaitBatchTurn(step: BatchStepTools, first: BatchTicket, ops: BatchTurnOps, deadline: BatchDeadline | undefined): Promise<BatchAnswered | BatchCancelled>;
export async function awaitBatchTurn(step: BatchStepTools, first: BatchTicket, ops: BatchTurnOps, deadline?: BatchDeadline): Promise<BatchAnswered | BatchCancelled> {
  const turnId = first.turn_id;
  let ticket = first;
  let k = 0;
  const answered = (out: AnsweredTurn, t: BatchTicket): BatchAnswered => ({
    ...out,
    batch: { batch_id: t.batch_id, submissions: t.submission, polls: k, wait_ms: Math.max(0, out.finished_at - first.submitted_at) },
  });
  for (;;) {
    let polls = 0;
    let slept = 0;
    let reason = "";
    while (!reason) {
      if (slept >= MAX_BATCH_WAIT_SECONDS) {
        reason = `batch ${ticket.batch_id} did not end within ${MAX_BATCH_WAIT_SECONDS / 3600} h`;
        return step.run(`${turnId}-give-up`, () => ops.abandon(ticket, reason)) as Promise<never>;
      }
      polls += 1;
      k += 1;
      let delay = pollDelaySeconds(polls);
      // The run's clock at this poll, from memoized figures only (a replay places the same sleeps).
      const at = ticket.submitted_at + slept * 1000;
      if (deadline && at + delay * 1000 > deadline.cancelAt) delay = Math.max(1, Math.ceil((deadline.cancelAt - at) / 1000));
      slept += delay;
      await step.sleep(`${turnId}-poll-${k}`, `${delay}s`);
      const current = ticket;
      const out = (await step.run(`${turnId}-check-${k}`, () => ops.check(current))) as BatchCheckOutcome;
      if (out.kind === "answered") return answered(out, ticket);
      if (out.kind === "retry" || out.kind === "canceled") reason = out.reason;
      else if (deadline && ticket.submitted_at + slept * 1000 >= deadline.cancelAt) {
        // Not enough time left for the batch: cancel it, and take what it did before the cancel.
        const t = ticket;
        await step.run(`${turnId}-cancel`, () => deadline.cancel(t));
        for (let c = 1; c <= MAX_CANCEL_POLLS; c++) {
          await step.sleep(`${turnId}-cancel-poll-${c}`, `${Math.min(5 * 2 ** (c - 1), 60)}s`);
          const after = (await step.run(`${turnId}-cancel-check-${c}`, () => ops.check(t, { afterCancel: true }))) as BatchCheckOutcome;
          if (after.kind === "answered") return answered(after, t);
          if (after.kind !== "pending") break;
        }
        // Cancelled (or still canceling after MAX_CANCEL_POLLS: its reservation stays open, and the direct turn
        // writes it off as a call whose outcome is unknown).
        return { kind: "cancelled", reason: `the deadline left no room for batch ${t.batch_id}`, batch_id: t.batch_id, wait_ms: Math.max(0, t.submitted_at + slept * 1000 - first.submitted_at) };
      }
    }
    const n = ticket.submission + 1;
    if (n > MAX_BATCH_SUBMISSIONS) {
      const why = `${reason} (after ${ticket.submission} submissions)`;
      const last = ticket;
      return step.run(`${turnId}-give-up`, () => ops.abandon(last, why)) as Promise<never>;
    }
    const previous = ticket;
    let again = (await step.run(`${turnId}-submit-${n}`, () => ops.resubmit(previous, n))) as BatchSubmitOutcome;
    for (let w = 1; again.kind === "dependency_down"; w++) {
      // The Batches API's breaker is open: wait for its probe (no attempt burned), then submit again.
      const notBefore = Date.parse(again.retry_at);
      await step.sleepUntil(`${turnId}-submit-${n}-wait-${w}`, again.retry_at);
      again = (await step.run(`${turnId}-submit-${n}-retry-${w}`, () => ops.resubmit(previous, n, notBefore))) as BatchSubmitOutcome;
    }
    // A resubmission reuses the turn's live reservation and asks for a slot only to queue the request; neither
    // should refuse, and if one does the step is retried by the engine.
    if (again.kind !== "submitted") throw new Error(`resubmitting ${turnId} was refused (${again.kind})`);
    ticket = again;
  }
}

/**
 * Cancels a batch turn's batch for the task's deadline (mode auto): the Batches API's cancel moves it to `canceling`,
 * then `ended`, with results for the requests that had finished. Idempotent: a batch no longer running is left as it
 * is. The turn's timeline row says so.
 */
export async function cancelBatchTurn(db: AdminClient, args: { taskId: string; turnId: string; model: string; ticket: BatchTicket; deadline: string }): Promise<{ cancelled: boolean }> {
  const cancelled = await cancelBatch(args.ticket.batch_id);
  await recordStep(db, {
    taskId: args.taskId,
    stepId: args.turnId,
    kind: "model",
    status: "running",
    detail: { model: args.model, mode: "batch", batch_id: args.ticket.batch_id, processing_status: "canceling", reason: `deadline ${args.deadline}: no room left for the batch; the call runs directly` },
  });
  return { cancelled };
}

/** Errored results worth submitting again (the same failures classifyModelError retries). */
const RETRIABLE_ERROR_TYPES = new Set(["rate_limit_error", "overloaded_error", "api_error", "timeout_error"]);

/** custom_id: [a-zA-Z0-9_-]{1,64} in the API; the task's UUID and the turn id fit (no ':' allowed). */
export function batchCustomId(taskId: string, turnId: string, submission: number): string {
  return `${taskId}_${turnId}${submission > 1 ? `_s${submission}` : ""}`.replace(/[^a-zA-Z0-9_-]/g, "_").slice(0, 64);
}

/** The side-effect ledger key of a turn's submission. */
export function batchLedgerKey(turnId: string, submission: number): string {
  return `batch:${turnId}${submission > 1 ? `#${submission}` : ""}`;
}

async function cancelBatch(batchId: string): Promise<boolean> {
  try {
    const b = await anthropic().messages.batches.retrieve(batchId);
    if (b.processing_status !== "in_progress") return false;
    await anthropic().messages.batches.cancel(batchId);
    return true;
  } catch {
    return false; // best effort: an unreachable API leaves the batch to expire on its own
  }
}

