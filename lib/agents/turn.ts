// One model turn of an agent, with its money: reserve the worst case in the budget ledger, call Claude, settle
// the real cost (or release the reservation when the call failed for good), and put the turn on the task's
// timeline. Inngest functions wrap each call of this in its own step, so a finished turn is never paid twice.
import Anthropic from "@anthropic-ai/sdk";
import { acquireBreaker, dependency, recordBreaker } from "@/lib/breakers";
import { estimateInputTokensUpperBound, noteBatchSaving, releaseBudget, reserveBudget, settleBudget, worstCaseMicros, writeOffLostCalls } from "@/lib/budget";
import type { AdminClient } from "@/lib/db/admin";
import type { Json } from "@/lib/db/database.types";
import { env } from "@/lib/env";
import { anthropic } from "@/lib/llm/anthropic";
import { classifyFailure } from "@/lib/failures";
import { wellFormedMessage } from "@/lib/llm/answer";
import { classifyModelError } from "@/lib/llm/errors";
import { costMicros } from "@/lib/llm/prices";
import { fittingMaxTokens } from "@/lib/budget-waits";
import { admissionOutputTokens, noteRateLimited, readRateLimitHeaders, returnRateLimit, settleRateLimit, takeRateLimit } from "@/lib/pacing";
import { taskHasEnded } from "@/lib/tasks/cancel";
import { recordStep } from "@/lib/tasks/lifecycle";
import type { AgentConfig } from "./catalog";
import { acquireSlot } from "./slots";
import { buildRequest, type Message } from "./request";

export type { Message };

/**
 * Outage-class failures (5xx, 529, timeouts, connection errors: lib/failures.ts) of one turn that wait durably instead
 * of spending one of the step's retry attempts while the breaker is still closed: the failures before it opens. With
 * the breaker's threshold at 5, a dependency that is really down opens it before a turn runs out of these; a turn that
 * keeps failing while others succeed (so the breaker never opens) falls back to the step's ordinary retries.
 */
export const OUTAGE_WAITS_PER_TURN = 4;
/** The wait before the k-th retry of such a failure (1-based): 15 s, 30 s, 60 s, 120 s — Inngest's own backoff. */
export function outageBackoffMs(k: number): number {
  return 15_000 * 2 ** Math.min(Math.max(k - 1, 0), 4);
}

/** Anthropic bills server-side web search per use ($10 per 1,000): the bound added to a reservation. */
export const WEB_SEARCH_MICROS_PER_USE = 10_000;
export const WEB_SEARCH_MAX_USES = 5;

export interface TurnUsage {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens: number;
  cache_read_input_tokens: number;
}

export type TurnOutcome =
  | {
      kind: "answered";
      content: Anthropic.ContentBlock[];
      stop_reason: Anthropic.Message["stop_reason"];
      usage: TurnUsage;
      cost_micros: number;
      /** When the turn ended (ms): memoized with the step, so wall-clock decisions replay identically. */
      finished_at: number;
      duration_ms: number;
      /** The settlement freed money while other tasks of the agent wait for some: wake them. */
      wake_budget?: boolean;
    }
  | {
      /** The task ended (cancelled) while its run went on: do not call the model. */
      kind: "ended";
    }
  | {
      /** Every concurrency slot of the agent is taken: try again later. */
      kind: "busy";
      holders: number;
      limit: number;
    }
  | {
      kind: "budget_refused";
      needed_micros: number;
      remaining_micros: number;
      cap_micros: number;
      window_start: string;
      next_window_at: string;
      never_fits: boolean;
      refused_at: number;
      /** in_flight: calls in flight are in the way (wait for a settle); settled: wait for the next window. */
      refusal: "in_flight" | "settled";
      settled_micros: number;
      in_flight_micros: number;
    }
  | {
      /** The model's circuit breaker is open (or this call just opened it): wait until retry_at, burning no attempt.
       * transient: the breaker is still closed, but the call failed the way an outage does: a short backoff, also
       * burning no attempt (OUTAGE_WAITS_PER_TURN of them per turn; then the step's own retries apply). */
      kind: "dependency_down";
      dependency: string;
      retry_at: string;
      last_error: string | null;
      refused_at: number;
      transient?: boolean;
    }
  | {
      /** The model's rate limit has no room for this call now (pacing), or the provider answered 429. */
      kind: "rate_limited";
      model: string;
      wait_until: string;
      dimension: string | null;
      provider_429: boolean;
      refused_at: number;
    };

export interface TurnArgs {
  taskId: string;
  /** The turn's stable id (`turn-3`): the budget reservation and the timeline row are keyed by it. */
  turnId: string;
  agent: AgentConfig;
  messages: Message[];
  /** The Inngest attempt of this step (a new reservation key when an earlier attempt's answer was lost). */
  attempt: number;
  /** The run's notion of now: never earlier than a budget window it slept until. */
  now: Date;
  serverWebSearch: boolean;
  /** The task's priority: who goes first when the model's rate limit is short. */
  priority?: number;
  /** Called once the call is admitted (rate limit and budget), before the model is called: a task that waited is
   * marked running again here. */
  onAdmitted?: () => Promise<unknown>;
  /** How many outage-class failures of this turn may still wait (a short durable backoff) instead of throwing into
   * the step's retries while the breaker is closed (default 0: throw, as a caller without a wait loop needs). */
  outageWaitsLeft?: number;
}

export async function runModelTurn(db: AdminClient, args: TurnArgs): Promise<TurnOutcome> {
  const { agent } = args;
  const started = Date.now();
  // A cancelled task's run is stopped by its event; this catches the run that did not hear it.
  if (await taskHasEnded(db, args.taskId)) return { kind: "ended" };
  // A slot first: the agent's concurrency limit counts tasks that are working, renewed on every turn.
  const slot = await acquireSlot(db, { agentId: agent.id, taskId: args.taskId, leaseSeconds: slotLeaseSeconds(agent), now: args.now });
  if (!slot.ok) return { kind: "busy", holders: slot.holders, limit: slot.limit };
  // The model's breaker: while Claude is down, fail fast into a durable wait instead of burning a retry.
  const dep = dependency.claude(agent.model);
  const gate = await acquireBreaker(db, dep, args.now);
  if (gate.role === "refused") {
    return { kind: "dependency_down", dependency: dep, retry_at: gate.retryAt, last_error: gate.lastError, refused_at: args.now.getTime() };
  }
  const params = buildRequest(agent, args.messages, { serverWebSearch: args.serverWebSearch });

  const inputTokens = await countInputTokens(params);
  const extraMicros = args.serverWebSearch ? WEB_SEARCH_MICROS_PER_USE * WEB_SEARCH_MAX_USES : 0;
  const worstCase = (maxTokens: number) => worstCaseMicros(agent.model, { inputTokens, maxTokens, extraMicros });

  // An earlier attempt of this turn whose answer was lost (process killed mid-call) was most likely billed: charge
  // it as an estimate before anything new is reserved, and reserve the retry under a fresh key.
  const lost = await writeOffLostCalls(db, { taskId: args.taskId, turnId: args.turnId, model: agent.model, inputTokens, maxTokens: agent.max_tokens, now: args.now });
  let reservationKey = lost.nextKey;

  // Pacing: the model's shared rate-limit buckets first, so a task waiting for its turn holds no budget. Output is
  // taken at what the call is expected to produce (the API counts output as generated, not at max_tokens; the worst
  // case until the agent's own answers calibrate it); the answer's usage corrects it.
  const pacing = env().NIGHTSHIFT_PACING === "on";
  const ticket = `${args.taskId}:${args.turnId}`;
  const admission = !pacing
    ? { ok: true, waitUntil: null, dimension: null, inputTaken: 0, outputTaken: 0 }
    : await takeRateLimit(db, {
    model: agent.model,
    ticket,
    priority: args.priority ?? 0,
    inputTokens,
    outputTokens: await admissionOutputTokens(db, { agentId: agent.id, model: agent.model, maxTokens: agent.max_tokens }),
    taskId: args.taskId,
    now: args.now,
  });
  if (!admission.ok) {
    return { kind: "rate_limited", model: agent.model, wait_until: admission.waitUntil!, dimension: admission.dimension, provider_429: false, refused_at: args.now.getTime() };
  }
  const giveBackTokens = async () => pacing && returnRateLimit(db, { model: agent.model, ticket, input: admission.inputTaken, output: admission.outputTaken });

  let maxTokens = agent.max_tokens;
  let needed = worstCase(maxTokens);
  const reserve = () => reserveBudget(db, { agentId: agent.id, taskId: args.taskId, stepId: reservationKey, model: agent.model, amountMicros: needed, now: args.now });
  let r = await reserve();
  if (r.ok && r.status === "settled") {
    reservationKey = `${lost.nextKey}#attempt-${args.attempt}`;
    r = await reserve();
  }
  if (!r.ok && !r.neverFits) {
    // Less than one worst case left, but enough for a useful answer: run with a smaller max_tokens whose worst
    // case fits (the database still checks the cap; a continuation turn picks up where a cut answer stops).
    const fit = fittingMaxTokens(agent.model, { inputTokens, extraMicros, maxTokens: agent.max_tokens, remainingMicros: r.remainingMicros });
    if (fit !== null) {
      maxTokens = fit;
      needed = worstCase(fit);
      r = await reserve();
    }
  }
  if (!r.ok) {
    await giveBackTokens();
    return {
      kind: "budget_refused",
      needed_micros: worstCase(agent.max_tokens),
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

  if (args.onAdmitted) await args.onAdmitted();
  let message: Anthropic.Message;
  let headers: Headers | undefined;
  let answeredAt: Date | undefined; // when the answer's rate-limit figures were current
  try {
    const answer = await anthropic().messages.create({ ...params, max_tokens: maxTokens }).withResponse();
    // A 200 whose body is not a message is a corrupted answer, handled below like one that did not parse.
    message = wellFormedMessage(answer.data);
    headers = answer.response.headers;
    answeredAt = laterOf(args.now);
  } catch (err) {
    const classified = classifyModelError(err);
    const answeredWithError = err instanceof Anthropic.APIError && typeof err.status === "number";
    if (pacing && answeredWithError && err.status === 429) {
      // Rate limited after all: not billed, and not an outage. Wait out retry-after (bounded), visibly, holding no
      // budget; the limiter takes the provider's figures.
      await releaseBudget(db, { taskId: args.taskId, stepId: reservationKey, now: laterOf(args.now) });
      const h = readRateLimitHeaders(err.headers);
      const { retryAt } = await noteRateLimited(db, { model: agent.model, ticket, headers: h, taskId: args.taskId, now: laterOf(args.now) });
      return { kind: "rate_limited", model: agent.model, wait_until: retryAt, dimension: "retry_after", provider_429: true, refused_at: laterOf(args.now).getTime() };
    }
    const failure = classifyFailure(classified);
    const breaker = await recordBreaker(db, dep, { success: false, outage: failure.outage, error: failure.summary }, args.now);
    if (answeredWithError || neverSent(err)) {
      // The API answered with an error, or the request never left: nothing was billed. Give money and tokens back.
      await releaseBudget(db, { taskId: args.taskId, stepId: reservationKey, now: laterOf(args.now) });
      await giveBackTokens();
    } else {
      // No answer read (connection broken after sending, timeout, a 200 that could not be parsed): the provider
      // most likely billed it. Charge the estimate now; the retry reserves anew.
      await writeOffLostCalls(db, { taskId: args.taskId, turnId: args.turnId, model: agent.model, inputTokens, maxTokens, now: laterOf(args.now) });
    }
    if (failure.outage && breaker.state !== "closed" && breaker.nextProbeAt) {
      // This failure opened the breaker (or met it open): the turn waits for the next probe, no attempt burned.
      await recordStep(db, {
        taskId: args.taskId,
        stepId: args.turnId,
        kind: "model",
        status: "running",
        detail: { model: agent.model, error: classified.message, waiting_for: dep, retry_at: breaker.nextProbeAt },
      });
      return { kind: "dependency_down", dependency: dep, retry_at: breaker.nextProbeAt, last_error: failure.summary, refused_at: args.now.getTime() };
    }
    const left = args.outageWaitsLeft ?? 0;
    if (failure.outage && left > 0) {
      // An outage-class failure before the breaker opens: back off durably, spending none of the step's attempts.
      const retryAt = new Date(args.now.getTime() + outageBackoffMs(OUTAGE_WAITS_PER_TURN - left + 1)).toISOString();
      await recordStep(db, {
        taskId: args.taskId,
        stepId: args.turnId,
        kind: "model",
        status: "running",
        detail: { model: agent.model, error: classified.message, waiting_for: dep, retry_at: retryAt },
      });
      return { kind: "dependency_down", dependency: dep, retry_at: retryAt, last_error: failure.summary, refused_at: args.now.getTime(), transient: true };
    }
    await recordStep(db, {
      taskId: args.taskId,
      stepId: args.turnId,
      kind: "model",
      status: "failed",
      detail: { model: agent.model, error: classified.message },
    });
    throw classified;
  }

  // The rate limit first, right after the answer: what was taken minus what the call used (unused tokens go back,
  // output beyond the expectation is charged), and the answer's headers calibrate the model's limits. While a call is
  // answered but not settled, the provider has counted its output and the limiter still holds it in flight; the
  // sooner it settles, the less the next settlements subtract twice.
  const u = message.usage;
  if (pacing) await settleRateLimit(db, {
    model: agent.model,
    ticket,
    refundInput: admission.inputTaken - (u.input_tokens + (u.cache_creation_input_tokens ?? 0)),
    refundOutput: admission.outputTaken - u.output_tokens,
    headers: readRateLimitHeaders(headers),
    now: laterOf(args.now),
    observedAt: answeredAt,
  });
  await recordBreaker(db, dep, { success: true }, args.now);
  return settleAnsweredTurn(db, args, { message, reservationKey, started, detail: maxTokens < agent.max_tokens ? { max_tokens: maxTokens } : undefined });
}

/** The request never reached the API (refused connection, unknown host): it cannot have been billed. */
function neverSent(err: unknown): boolean {
  if (!(err instanceof Anthropic.APIConnectionError) || err instanceof Anthropic.APIConnectionTimeoutError) return false;
  const code = (err.cause as { code?: string } | undefined)?.code;
  return code === "ECONNREFUSED" || code === "ENOTFOUND" || code === "EAI_AGAIN" || code === "EHOSTUNREACH";
}

/** Now by the wall clock, never before the run's clock (which may be ahead after sleeping until a window). */
function laterOf(now: Date): Date {
  return new Date(Math.max(Date.now(), now.getTime()));
}


/**
 * The bookkeeping of an answered model call, shared by direct and batch turns: price the usage (batch calls at the
 * batch discount, web searches per use), settle the reservation with it, and put the turn on the task's timeline.
 */
export async function settleAnsweredTurn(
  db: AdminClient,
  args: TurnArgs,
  call: { message: Anthropic.Message; reservationKey: string; started: number; batch?: boolean; detail?: Record<string, Json> },
): Promise<Extract<TurnOutcome, { kind: "answered" }>> {
  const { agent } = args;
  const { message } = call;
  const usage: TurnUsage = {
    input_tokens: message.usage.input_tokens,
    output_tokens: message.usage.output_tokens,
    cache_creation_input_tokens: message.usage.cache_creation_input_tokens ?? 0,
    cache_read_input_tokens: message.usage.cache_read_input_tokens ?? 0,
  };
  const searches = message.usage.server_tool_use?.web_search_requests ?? 0;
  const cost = costMicros(agent.model, usage, { batch: call.batch }) + searches * WEB_SEARCH_MICROS_PER_USE;
  // settled_at is when it settled: the wall clock now, never before the run's clock.
  const settledAt = new Date(Math.max(Date.now(), args.now.getTime()));
  const settlement = await settleBudget(db, { taskId: args.taskId, stepId: call.reservationKey, actualMicros: cost, usage, now: settledAt });
  if (call.batch) {
    // What the batch discount saved on this call (shown per task and per night).
    const fullPrice = costMicros(agent.model, usage) + searches * WEB_SEARCH_MICROS_PER_USE;
    await noteBatchSaving(db, { taskId: args.taskId, stepId: call.reservationKey, savingMicros: Math.max(0, fullPrice - cost) });
  }
  const finished = Date.now();
  await recordStep(db, {
    taskId: args.taskId,
    stepId: args.turnId,
    kind: "model",
    status: "completed",
    detail: {
      model: agent.model,
      stop_reason: message.stop_reason,
      cache_read_input_tokens: usage.cache_read_input_tokens,
      duration_ms: finished - call.started,
      ...call.detail,
    },
    inputTokens: usage.input_tokens + usage.cache_creation_input_tokens + usage.cache_read_input_tokens,
    outputTokens: usage.output_tokens,
    costMicros: cost,
  });
  return {
    kind: "answered",
    content: message.content,
    stop_reason: message.stop_reason,
    usage,
    cost_micros: cost,
    finished_at: finished,
    // The agent's own time in this step (a batch's queueing is reported apart, so the wall clock skips it).
    duration_ms: finished - call.started,
    ...(settlement.settled && settlement.waiters && settlement.reservedMicros > settlement.actualMicros ? { wake_budget: true } : {}),
  };
}


/** A slot outlives the longest turn with room to spare; a run that died frees it when the lease runs out. */
function slotLeaseSeconds(agent: AgentConfig): number {
  return Math.min(agent.wall_clock_seconds, 600) + 300;
}

/** Input tokens for the reservation: counted by the API (free), or bounded from above when counting fails. */
export async function countInputTokens(params: Anthropic.MessageCreateParamsNonStreaming): Promise<number> {
  try {
    const { max_tokens: _max, ...countable } = params;
    const counted = await anthropic().messages.countTokens(countable as Anthropic.MessageCountTokensParams);
    return counted.input_tokens;
  } catch {
    return estimateInputTokensUpperBound(params);
  }
}

/** The text of an assistant turn. */
export function textOf(content: Anthropic.ContentBlock[]): string {
  return content
    .filter((b): b is Anthropic.TextBlock => b.type === "text")
    .map((b) => b.text)
    .join("");
}
