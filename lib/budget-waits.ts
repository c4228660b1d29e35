// How a task waits when the budget refuses a call (issue 13). The database says why it refused
// (reserve_budget's `refusal`):
//   in_flight — settled spend + this call fits the cap; reservations of calls in flight are in the way. They settle
//               within seconds, usually far below their worst case, so the task waits for a settle or release of the
//               agent's reservations (the event budget/agent.freed) with a short durable timeout, then tries again.
//   settled   — settled spend alone leaves no room: the task waits for the next window — or a raised cap, which
//               also wakes it (the same event).
// Before either, a call that does not fit at the agent's max_tokens may still run with a smaller max_tokens whose
// worst case fits, if that leaves a useful answer (fittingMaxTokens); the cap stays hard.
import { worstCaseMicros } from "@/lib/budget";
import { priceFor } from "@/lib/llm/prices";

/** The in-flight wait's fallback: settles normally arrive within a model call's duration. */
export const IN_FLIGHT_WAIT_SECONDS = 30;
/** The smallest max_tokens worth calling with: below it an answer is too short to be useful. */
export const MIN_USEFUL_MAX_TOKENS = 256;

/** The event that wakes an agent's tasks waiting for money (name shared with inngest/events.ts). */
export const BUDGET_FREED_EVENT = "budget/agent.freed";

/**
 * The largest max_tokens (≤ the agent's) whose worst case fits in `remainingMicros`, or null when that is below the
 * useful floor (min(MIN_USEFUL_MAX_TOKENS, the agent's max_tokens)).
 */
export function fittingMaxTokens(
  model: string,
  call: { inputTokens: number; extraMicros: number; maxTokens: number; remainingMicros: number },
): number | null {
  const floor = Math.min(MIN_USEFUL_MAX_TOKENS, call.maxTokens);
  const fixed = worstCaseMicros(model, { inputTokens: call.inputTokens, maxTokens: 0, extraMicros: call.extraMicros });
  const room = call.remainingMicros - fixed;
  if (room <= 0) return null;
  // worstCaseMicros rounds the whole sum up, so step down until it fits (at most a couple of steps).
  let tokens = Math.min(call.maxTokens - 1, Math.floor((room * 1_000_000) / priceFor(model).output));
  while (tokens >= floor && worstCaseMicros(model, { inputTokens: call.inputTokens, maxTokens: tokens, extraMicros: call.extraMicros }) > call.remainingMicros) {
    tokens -= 1;
  }
  return tokens >= floor ? tokens : null;
}

export interface BudgetRefusal {
  refusal: "in_flight" | "settled";
  needed_micros: number;
  cap_micros: number;
  settled_micros: number;
  in_flight_micros: number;
  next_window_at: string;
  refused_at: number;
}

export interface BudgetWaitPlan {
  /** waitForEvent timeout: an ISO time (the local engine and Inngest accept one). */
  until: string;
  /** The task's status_reason while it waits. */
  reason: string;
  /** Tell the operator (once per agent per window): only when the budget is really spent. */
  notify: boolean;
}

export function planBudgetWait(agentId: string, r: BudgetRefusal): BudgetWaitPlan {
  const figures = `${usd(r.settled_micros)} settled + ${usd(r.in_flight_micros)} in flight of ${agentId}'s ${usd(r.cap_micros)} daily budget; the next call needs up to ${usd(r.needed_micros)}`;
  if (r.refusal === "in_flight") {
    return {
      until: new Date(r.refused_at + IN_FLIGHT_WAIT_SECONDS * 1000).toISOString(),
      reason: `waiting for calls in flight to settle (${figures})`,
      notify: false,
    };
  }
  return {
    until: new Date(Date.parse(r.next_window_at)).toISOString(),
    reason: `daily budget spent (${figures}); resumes at ${r.next_window_at} or when the cap is raised`,
    notify: true,
  };
}

/** Dollars for a reason text: cents, or tenths of a cent below a dollar. */
export function usd(micros: number): string {
  return micros < 1_000_000 ? `$${(micros / 1_000_000).toFixed(4)}` : `$${(micros / 1_000_000).toFixed(2)}`;
}
