// The durable waits of a model turn that could not run yet (issue 13): for money (budget) and for the model's rate
// limit. The decisions are made in Postgres (reserve_budget's refusal kind, take_rate_limit's wait_until); these
// helpers only wait durably and keep the task's status and notices truthful.
//
//   budget-wait-<turn>-<n>    step.run: release the slot, mark waiting_budget with the real figures, notify (settled only)
//   budget-freed-<turn>-<n>   step.waitForEvent(budget/agent.freed for the agent, until the plan's time)
//   rate-sleep-<turn>-<n>     step.sleepUntil(wait_until): the task is already waiting_rate_limit (set by the database)
//   slot-wait-<turn>-<n>      step.waitForEvent(agent/slot.released for the task, fallback slotWaitFallback)  } one
//   slot-check-<turn>-<n>     step.run: re-announce a hand-over that came before the wait was registered        } response
import type { GetStepTools, Inngest } from "inngest";
import { agentSlotReleased, budgetAgentFreed } from "@/inngest/events";
import { recheckSlot, releaseSlot } from "@/lib/agents/slots";
import type { TurnOutcome } from "@/lib/agents/turn";
import { noteBudgetExhausted } from "@/lib/budget";
import { planBudgetWait } from "@/lib/budget-waits";
import { db } from "@/lib/db/server";
import { announce } from "@/lib/notifications";
import { markWaitingBudget } from "@/lib/tasks/lifecycle";

type Step = GetStepTools<Inngest.Any>;
type Refused = Extract<TurnOutcome, { kind: "budget_refused" }>;
type RateLimited = Extract<TurnOutcome, { kind: "rate_limited" }>;

/** Waits until money may be there for the refused call; returns the run's clock after the wait (ms) and how long
 * the wait lasted (which does not count against the agent's wall clock). */
export async function waitForBudget(
  step: Step,
  ctx: { taskId: string; agentId: string; turn: number; wait: number; refused: Refused },
): Promise<{ clock: number; waitedMs: number }> {
  const { taskId, agentId, turn, wait, refused } = ctx;
  const plan = planBudgetWait(agentId, refused);
  // The wait is registered before the task is marked waiting (both in one response, the wait first), so a wake-up
  // sent by anything that reacts to the mark cannot be missed; one sent earlier is covered by the timeout.
  const [freed] = await Promise.all([
    step.waitForEvent(`budget-freed-${turn}-${wait}`, {
      event: budgetAgentFreed.name,
      timeout: new Date(plan.until), // a Date: the SDK sends it as an absolute time (a string would be read as a duration)
      if: `async.data.agent_id == '${agentId}'`,
    }),
    step.run(`budget-wait-${turn}-${wait}`, async () => {
      await releaseSlot(db(), taskId); // a waiting task does not hold one of the agent's slots
      await markWaitingBudget(db(), taskId, plan.reason);
      if (!plan.notify) return;
      const first = await noteBudgetExhausted(db(), {
        agentId,
        taskId,
        windowStart: refused.window_start,
        nextWindowAt: refused.next_window_at,
        payload: { needed_micros: refused.needed_micros, remaining_micros: refused.remaining_micros },
        now: new Date(refused.refused_at),
      });
      // The operator hears about it once per agent per window (the notice's key is per agent and window).
      if (first) await announce(db(), `budget_exhausted:${agentId}:${refused.window_start}`);
    }),
  ]);
  const until = Date.parse(plan.until);
  const woke = freed ? Math.min(until, Number((freed as { ts?: number }).ts ?? until)) : until;
  // The run's clock moves to the end of the wait (never back), so the retry asks the database at that time: a
  // timeout at the window's end lands in the new window.
  return { clock: woke, waitedMs: Math.max(0, woke - refused.refused_at) };
}

/** Waits for the model's rate limit (the database set waiting_rate_limit with the model and the time); returns the
 * run's clock after the wait and how long it lasted. */
export async function waitForRateLimit(step: Step, ctx: { turn: number; wait: number; limited: RateLimited }): Promise<{ clock: number; waitedMs: number }> {
  await step.sleepUntil(`rate-sleep-${ctx.turn}-${ctx.wait}`, ctx.limited.wait_until);
  const clock = Date.parse(ctx.limited.wait_until);
  return { clock, waitedMs: Math.max(0, clock - ctx.limited.refused_at) };
}

/**
 * How long a task waits for a slot's hand-over before it asks again by itself (a lost wake-up, a holder that died):
 * 10 minutes, doubling with each further slot wait of the turn up to an hour, so a long line costs few calls even
 * when nothing wakes it, and a wake-up that never comes costs the night at most an hour. `slotWait` counts only this
 * turn's slot waits: waits for money, the rate limit or a dependency say nothing about the line, and counting them
 * made the first slot wait after a long outage fall back only after the full hour.
 */
export function slotWaitFallback(slotWait: number): string {
  return `${Math.min(10 * 2 ** Math.min(slotWait - 1, 3), 60)}m`;
}

/**
 * Waits for one of the agent's slots. The task is already in its agent's line (claim_agent_slot put it there,
 * ordered by priority, then age); whoever gives a slot back hands it to the first in line and records
 * `agent/slot.released` for that task in the outbox. The check step runs once the wait is registered (the engine,
 * like Inngest, registers a wait before it runs a step planned beside it), so a hand-over that happened before the
 * wait could hear it is announced again under this wait's own id. Costs two calls: one to plan, one for the check.
 */
export async function waitForSlot(
  step: Step,
  ctx: { taskId: string; agentId: string; turn: number; wait: number; /** this turn's slot waits so far, this one included */ slotWait: number },
): Promise<void> {
  const { taskId, agentId, turn, wait, slotWait } = ctx;
  await Promise.all([
    step.waitForEvent(`slot-wait-${turn}-${wait}`, {
      event: agentSlotReleased.name,
      timeout: slotWaitFallback(slotWait),
      if: `async.data.task_id == '${taskId}'`,
    }),
    step.run(`slot-check-${turn}-${wait}`, () => recheckSlot(db(), { agentId, taskId, eventId: `slot-${taskId}-check-${turn}-${wait}` })),
  ]);
}
