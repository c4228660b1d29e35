// One model turn of an agent, with its money: reserve the worst case in the budget ledger, call Claude, settle
// the real cost (or release the reservation when the call failed for good), and put the turn on the task's
// timeline. Inngest functions wrap each call of this in its own step, so a finished turn is never paid twice.
import type Anthropic from "@anthropic-ai/sdk";
import { NonRetriableError } from "inngest";
import { acquireBreaker, dependency, recordBreaker } from "@/lib/breakers";
import { estimateInputTokensUpperBound, releaseBudget, reserveBudget, settleBudget, worstCaseMicros } from "@/lib/budget";
import type { AdminClient } from "@/lib/db/admin";
import type { Json } from "@/lib/db/database.types";
import { anthropic } from "@/lib/llm/anthropic";
import { classifyFailure } from "@/lib/failures";
import { classifyModelError } from "@/lib/llm/errors";
import { costMicros } from "@/lib/llm/prices";
import { taskHasEnded } from "@/lib/tasks/cancel";
import { recordStep } from "@/lib/tasks/lifecycle";
import type { AgentConfig } from "./catalog";
import { acquireSlot } from "./slots";
import { buildRequest, type Message } from "./request";

export type { Message };

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
      /** The model's circuit breaker is open (or this call just opened it): wait until retry_at, burning no attempt. */
      kind: "dependency_down";
      dependency: string;
      retry_at: string;
      last_error: string | null;
      refused_at: number;
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
  const needed = worstCaseMicros(agent.model, {
    inputTokens,
    maxTokens: agent.max_tokens,
    extraMicros: args.serverWebSearch ? WEB_SEARCH_MICROS_PER_USE * WEB_SEARCH_MAX_USES : 0,
  });

  let reservationKey = args.turnId;
  let r = await reserveBudget(db, { agentId: agent.id, taskId: args.taskId, stepId: reservationKey, model: agent.model, amountMicros: needed, now: args.now });
  if (r.ok && r.status === "settled") {
    // An earlier attempt of this step paid for an answer that was lost before it was checkpointed (a crash
    // between settle and memo). Calling again is a new expense: reserve it under its own key.
    reservationKey = `${args.turnId}#attempt-${args.attempt}`;
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
    };
  }

  let message: Anthropic.Message;
  try {
    message = await anthropic().messages.create(params);
  } catch (err) {
    const classified = classifyModelError(err);
    const failure = classifyFailure(classified);
    const breaker = await recordBreaker(db, dep, { success: false, outage: failure.outage, error: failure.summary }, args.now);
    if (failure.outage && breaker.state !== "closed" && breaker.nextProbeAt) {
      // This failure opened the breaker (or met it open): the turn waits for the next probe, no attempt burned.
      await releaseBudget(db, { taskId: args.taskId, stepId: reservationKey, now: args.now });
      await recordStep(db, {
        taskId: args.taskId,
        stepId: args.turnId,
        kind: "model",
        status: "running",
        detail: { model: agent.model, error: classified.message, waiting_for: dep, retry_at: breaker.nextProbeAt },
      });
      return { kind: "dependency_down", dependency: dep, retry_at: breaker.nextProbeAt, last_error: failure.summary, refused_at: args.now.getTime() };
    }
    // A retriable failure keeps its reservation for the retry of this step; a final one gives it back.
    if (classified instanceof NonRetriableError) await releaseBudget(db, { taskId: args.taskId, stepId: reservationKey, now: args.now });
    await recordStep(db, {
      taskId: args.taskId,
      stepId: args.turnId,
      kind: "model",
      status: "failed",
      detail: { model: agent.model, error: classified.message },
    });
    throw classified;
  }
  await recordBreaker(db, dep, { success: true }, args.now);

  return settleAnsweredTurn(db, args, { message, reservationKey, started });
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
  await settleBudget(db, { taskId: args.taskId, stepId: call.reservationKey, actualMicros: cost, usage, now: args.now });
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
