// Budget waits that end when money frees up (issue 13), on the real database through PostgREST and supabase-js:
// the refusal kinds under concurrent callers, the wake-up signal of a settlement, the smaller max_tokens that never
// lets spend pass the cap, windows that keep their time zone until they end, and estimated spend for lost answers.
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { releaseBudget, reserveBudget, settleBudget, spendByAgentDay, spendByTask, worstCaseMicros, writeOffLostCalls } from "../../../lib/budget";
import { fittingMaxTokens, planBudgetWait } from "../../../lib/budget-waits";
import { createTestSupabase, type TestSupabase } from "../../support/supabase";
import { sql } from "../db/sql";
import { createAgent, createTask, expectCountersMatchLedger, ledgerCommitted, setCap, taskCost } from "./helpers";

let sb: TestSupabase;
const NOW = "2026-11-29T15:00:00Z";
const MODEL = "claude-sonnet-4-6";

beforeAll(async () => {
  sb = await createTestSupabase();
});
afterAll(async () => {
  await sb?.stop();
});

const reserve = (agentId: string, taskId: string, stepId: string, amountMicros: number, now = NOW) =>
  reserveBudget(sb.admin, { agentId, taskId, stepId, model: MODEL, amountMicros, now });

describe("refusal kinds", () => {
  test("the issue's repro: B is refused for money in flight, and fits once A settles", async () => {
    const agent = await createAgent(sb.databaseUrl, { capMicros: 50_000 });
    const [a, b] = [await createTask(sb.databaseUrl, agent), await createTask(sb.databaseUrl, agent)];
    expect(await reserve(agent, a, "turn-1", 33_720)).toMatchObject({ ok: true, refusal: null, settledMicros: 0, inFlightMicros: 33_720 });
    const refused = await reserve(agent, b, "turn-1", 33_720);
    expect(refused).toMatchObject({ ok: false, refusal: "in_flight", settledMicros: 0, inFlightMicros: 33_720, remainingMicros: 16_280 });

    // B waits for money (as run-task marks it): A's settlement says so, so the run wakes B.
    await sql(sb.databaseUrl, `update public.tasks set status = 'waiting_budget' where id = $1`, [b]);
    const settled = await settleBudget(sb.admin, { taskId: a, stepId: "turn-1", actualMicros: 3_400, now: "2026-11-29T15:00:05Z" });
    expect(settled).toMatchObject({ settled: true, waiters: true });
    expect(await reserve(agent, b, "turn-1", 33_720, "2026-11-29T15:00:06Z")).toMatchObject({ ok: true });
    // settled_at is the settlement's time, not the reservation's.
    const [row] = await sql<{ reserved_at: Date; settled_at: Date }>(
      sb.databaseUrl, `select reserved_at, settled_at from public.budget_reservations where task_id = $1`, [a]);
    expect(row!.settled_at.toISOString()).toBe("2026-11-29T15:00:05.000Z");
    expect(row!.reserved_at.toISOString()).toBe("2026-11-29T15:00:00.000Z");
  });

  test("settled spend that leaves no room is a 'settled' refusal; no waiters, no wake-up", async () => {
    const agent = await createAgent(sb.databaseUrl, { capMicros: 50_000 });
    const t = await createTask(sb.databaseUrl, agent);
    await reserve(agent, t, "turn-1", 40_000);
    expect(await settleBudget(sb.admin, { taskId: t, stepId: "turn-1", actualMicros: 30_000, now: NOW })).toMatchObject({ waiters: false });
    expect(await reserve(agent, t, "turn-2", 25_000)).toMatchObject({ ok: false, refusal: "settled", settledMicros: 30_000, inFlightMicros: 0 });
    // A raised cap applies to the next call.
    await setCap(sb.databaseUrl, agent, 60_000);
    expect(await reserve(agent, t, "turn-2", 25_000)).toMatchObject({ ok: true });
  });

  test("40 concurrent callers: the cap holds, and each refusal's kind matches the window it saw", async () => {
    const agent = await createAgent(sb.databaseUrl, { capMicros: 100_000 });
    const tasks = await Promise.all(Array.from({ length: 40 }, () => createTask(sb.databaseUrl, agent)));
    // 10 settled calls first: 30,000 settled.
    for (let i = 0; i < 10; i++) {
      await reserve(agent, tasks[i]!, "turn-0", 10_000);
      await settleBudget(sb.admin, { taskId: tasks[i]!, stepId: "turn-0", actualMicros: 3_000, now: NOW });
    }
    const results = await Promise.all(tasks.map((t, i) => reserve(agent, t, "turn-1", i % 2 ? 20_000 : 80_000)));
    const granted = results.filter((r) => r.ok);
    const refused = results.filter((r) => !r.ok);
    expect(granted.length).toBeGreaterThan(0);
    expect(refused.length).toBeGreaterThan(0);
    for (const [i, r] of results.entries()) {
      if (r.ok) continue;
      const amount = i % 2 ? 20_000 : 80_000;
      // settled spend never changes under this burst (nothing settles), so the kind is decided by it alone
      expect(r.settledMicros).toBe(30_000);
      expect(r.refusal).toBe(30_000 + amount > 100_000 ? "settled" : "in_flight");
    }
    const committed = Object.values(await ledgerCommitted(sb.databaseUrl, agent))[0]!;
    expect(committed).toBeLessThanOrEqual(100_000);
    await expectCountersMatchLedger(sb.databaseUrl, agent);
  });
});

describe("a smaller max_tokens", () => {
  test("fits above the floor only, and never lets spend pass the cap under concurrent callers", async () => {
    // 2,000 input tokens at $3/MTok (cache-write bound $3.75) + 4,096 output at $15/MTok
    const full = worstCaseMicros(MODEL, { inputTokens: 2_000, maxTokens: 4_096 });
    expect(fittingMaxTokens(MODEL, { inputTokens: 2_000, extraMicros: 0, maxTokens: 4_096, remainingMicros: full })).toBe(4_095);
    const fit = fittingMaxTokens(MODEL, { inputTokens: 2_000, extraMicros: 0, maxTokens: 4_096, remainingMicros: 20_000 })!;
    expect(worstCaseMicros(MODEL, { inputTokens: 2_000, maxTokens: fit })).toBeLessThanOrEqual(20_000);
    expect(worstCaseMicros(MODEL, { inputTokens: 2_000, maxTokens: fit + 1 })).toBeGreaterThan(20_000);
    // Below the floor (256 tokens): no call.
    expect(fittingMaxTokens(MODEL, { inputTokens: 2_000, extraMicros: 0, maxTokens: 4_096, remainingMicros: 7_500 + 255 * 15 })).toBeNull();

    const cap = 150_000;
    const agent = await createAgent(sb.databaseUrl, { capMicros: cap });
    const tasks = await Promise.all(Array.from({ length: 30 }, () => createTask(sb.databaseUrl, agent)));
    const outcomes = await Promise.all(
      tasks.map(async (t) => {
        const first = await reserve(agent, t, "turn-1", full);
        if (first.ok) return "full";
        const tokens = fittingMaxTokens(MODEL, { inputTokens: 2_000, extraMicros: 0, maxTokens: 4_096, remainingMicros: first.remainingMicros });
        if (tokens === null) return "none";
        const second = await reserve(agent, t, "turn-1", worstCaseMicros(MODEL, { inputTokens: 2_000, maxTokens: tokens }));
        return second.ok ? "smaller" : "raced";
      }),
    );
    expect(outcomes).toContain("full");
    expect(outcomes).toContain("smaller");
    const committed = Object.values(await ledgerCommitted(sb.databaseUrl, agent))[0]!;
    expect(committed).toBeLessThanOrEqual(cap);
    await expectCountersMatchLedger(sb.databaseUrl, agent);
  });
});

describe("a window keeps its time zone until it ends", () => {
  test("moving east mid-window opens no second cap for the same hours", async () => {
    const agent = await createAgent(sb.databaseUrl, { capMicros: 10_000, timezone: "UTC" });
    const t = await createTask(sb.databaseUrl, agent);
    let n = 0;
    const r = (now: string, amount = 10_000) => reserve(agent, t, `turn-${++n}`, amount, now);
    expect(await r("2026-11-29T10:00:00Z")).toMatchObject({ ok: true, windowStart: "2026-11-29", nextWindowAt: "2026-11-30T00:00:00.000Z" });
    await settleBudget(sb.admin, { taskId: t, stepId: "turn-1", actualMicros: 10_000, now: "2026-11-29T10:00:30Z" });
    // Kiritimati is UTC+14: it is already 2026-11-30 there. Before the fix this opened a fresh cap.
    await sql(sb.databaseUrl, `update public.agents set budget_timezone = 'Pacific/Kiritimati' where id = $1`, [agent]);
    expect(await r("2026-11-29T10:01:00Z", 1)).toMatchObject({ ok: false, refusal: "settled", windowStart: "2026-11-29", nextWindowAt: "2026-11-30T00:00:00.000Z" });
    expect(await r("2026-11-29T23:59:59Z", 1)).toMatchObject({ ok: false, windowStart: "2026-11-29" });
    // When it ends, the next window is in the new zone: from the old window's end to Kiritimati's midnight.
    expect(await r("2026-11-30T00:00:00Z")).toMatchObject({ ok: true, windowStart: "2026-11-30", nextWindowAt: "2026-11-30T10:00:00.000Z" });
    expect(await r("2026-11-30T10:00:00Z")).toMatchObject({ ok: true, windowStart: "2026-12-01", nextWindowAt: "2026-12-01T10:00:00.000Z" });
    const days = await spendByAgentDay(sb.admin, { agentId: agent });
    expect(days.map((d) => [d.window_start, d.timezone, d.starts_at, d.ends_at])).toEqual([
      ["2026-12-01", "Pacific/Kiritimati", "2026-11-30T10:00:00+00:00", "2026-12-01T10:00:00+00:00"],
      ["2026-11-30", "Pacific/Kiritimati", "2026-11-30T00:00:00+00:00", "2026-11-30T10:00:00+00:00"],
      ["2026-11-29", "UTC", "2026-11-29T00:00:00+00:00", "2026-11-30T00:00:00+00:00"],
    ]);
    await expectCountersMatchLedger(sb.databaseUrl, agent);
  });

  test("moving west mid-window extends the day under the same cap", async () => {
    const agent = await createAgent(sb.databaseUrl, { capMicros: 10_000, timezone: "Pacific/Kiritimati" });
    const t = await createTask(sb.databaseUrl, agent);
    let n = 0;
    const r = (now: string, amount = 1) => reserve(agent, t, `turn-${++n}`, amount, now);
    // 2026-11-29T12:00Z is 2026-11-30 02:00 in Kiritimati: the window 2026-11-30 runs to 2026-11-30T10:00Z.
    expect(await r("2026-11-29T12:00:00Z", 10_000)).toMatchObject({ ok: true, windowStart: "2026-11-30", nextWindowAt: "2026-11-30T10:00:00.000Z" });
    await settleBudget(sb.admin, { taskId: t, stepId: "turn-1", actualMicros: 10_000, now: "2026-11-29T12:00:30Z" });
    await sql(sb.databaseUrl, `update public.agents set budget_timezone = 'UTC' where id = $1`, [agent]);
    expect(await r("2026-11-29T13:00:00Z")).toMatchObject({ ok: false, windowStart: "2026-11-30" });
    // At its end it would be 2026-11-30 again in UTC: the same day goes on, under the same (spent) cap.
    expect(await r("2026-11-30T10:00:00Z")).toMatchObject({ ok: false, refusal: "settled", windowStart: "2026-11-30", nextWindowAt: "2026-12-01T00:00:00.000Z" });
    expect(await r("2026-12-01T00:00:00Z")).toMatchObject({ ok: true, windowStart: "2026-12-01", nextWindowAt: "2026-12-02T00:00:00.000Z" });
    await expectCountersMatchLedger(sb.databaseUrl, agent);
  });
});

describe("estimated spend for lost answers", () => {
  test("an open reservation of a lost call is charged as an estimate, counted by the cap and shown apart", async () => {
    const agent = await createAgent(sb.databaseUrl, { capMicros: 1_000_000 });
    const t = await createTask(sb.databaseUrl, agent);
    const worst = worstCaseMicros(MODEL, { inputTokens: 1_000, maxTokens: 1_024 });
    // History: this agent's calls answer ~200 output tokens.
    const h = await createTask(sb.databaseUrl, agent);
    await reserve(agent, h, "turn-1", worst);
    await settleBudget(sb.admin, { taskId: h, stepId: "turn-1", actualMicros: 6_000, usage: { input_tokens: 1_000, output_tokens: 200 }, now: NOW });

    await reserve(agent, t, "turn-1", worst); // the call whose answer is lost
    const w = await writeOffLostCalls(sb.admin, { taskId: t, turnId: "turn-1", model: MODEL, inputTokens: 1_000, maxTokens: 1_024, now: NOW });
    // Charged as an estimate: the counted input (1,000 × $3/MTok = 3,000 µ$) plus the expected output — this agent's
    // mean on the model, 200 tokens × $15/MTok = 3,000 µ$ — far below the reservation (the worst case).
    const estimate = 3_000 + 3_000;
    expect(worst).toBeGreaterThan(estimate);
    expect(w).toEqual({ writtenOff: 1, estimatedMicros: estimate, nextKey: "turn-1#2" });
    const [row] = await sql<{ input_tokens: number; output_tokens: number; estimated: boolean }>(
      sb.databaseUrl, `select input_tokens, output_tokens, estimated from public.budget_reservations where task_id = $1 and step_id = 'turn-1'`, [t]);
    expect(row).toEqual({ input_tokens: 1_000, output_tokens: 200, estimated: true });
    expect(await reserve(agent, t, w.nextKey, worst)).toMatchObject({ ok: true, status: "reserved" });
    await settleBudget(sb.admin, { taskId: t, stepId: w.nextKey, actualMicros: 5_500, now: NOW });
    // A second write-off finds nothing open; the next key moves on.
    expect(await writeOffLostCalls(sb.admin, { taskId: t, turnId: "turn-1", model: MODEL, inputTokens: 1_000, maxTokens: 1_024, now: NOW }))
      .toEqual({ writtenOff: 0, estimatedMicros: 0, nextKey: "turn-1#3" });

    expect(await spendByTask(sb.admin, t)).toMatchObject({ settled_micros: 5_500 + estimate, estimated_micros: estimate, calls: 2, estimated_calls: 1 });
    expect(await taskCost(sb.databaseUrl, t)).toBe(5_500 + estimate);
    const [est] = await sql<{ e: string }>(sb.databaseUrl, `select estimated_cost_micros::text as e from public.tasks where id = $1`, [t]);
    expect(Number(est!.e)).toBe(estimate);
    const [day] = await spendByAgentDay(sb.admin, { agentId: agent });
    expect(day).toMatchObject({ settled_micros: 11_500 + estimate, estimated_micros: estimate });
    await expectCountersMatchLedger(sb.databaseUrl, agent);
  });

  test("the estimate: input + expected output (¼ max_tokens without history), never below the input cost, within the reservation", async () => {
    const agent = await createAgent(sb.databaseUrl, { capMicros: 1_000_000, model: "claude-haiku-4-5" });
    const t = await createTask(sb.databaseUrl, agent);
    const haiku = (turnId: string, amountMicros: number) =>
      reserveBudget(sb.admin, { agentId: agent, taskId: t, stepId: turnId, model: "claude-haiku-4-5", amountMicros, now: NOW });
    const writeOff = (turnId: string) =>
      writeOffLostCalls(sb.admin, { taskId: t, turnId, model: "claude-haiku-4-5", inputTokens: 10_000, maxTokens: 1_000, now: NOW });
    // No haiku history anywhere: 10,000 input × $1/MTok + ¼ × 1,000 output × $5/MTok = 10,000 + 1,250.
    await haiku("turn-1", 50_000);
    expect((await writeOff("turn-1")).estimatedMicros).toBe(11_250);
    // A reservation below that (a smaller max_tokens that fitted the remaining budget): at most the reservation…
    await haiku("turn-2", 11_000);
    expect((await writeOff("turn-2")).estimatedMicros).toBe(11_000);
    // …but never below the input cost: the provider read the input whatever became of the answer.
    await haiku("turn-3", 4_000);
    expect((await writeOff("turn-3")).estimatedMicros).toBe(10_000);
    // A released reservation is not spend and is not written off.
    await haiku("turn-4", 50_000);
    await releaseBudget(sb.admin, { taskId: t, stepId: "turn-4", now: NOW });
    expect(await writeOff("turn-4")).toEqual({ writtenOff: 0, estimatedMicros: 0, nextKey: "turn-4" });
    expect(await taskCost(sb.databaseUrl, t)).toBe(11_250 + 11_000 + 10_000);
    await expectCountersMatchLedger(sb.databaseUrl, agent);
  });
});

describe("wait plans", () => {
  test("in flight waits briefly for a settle; settled waits for the window (or a wake-up); reasons carry the figures", () => {
    const base = { needed_micros: 33_720, cap_micros: 50_000, settled_micros: 3_400, in_flight_micros: 33_720, refused_at: Date.parse(NOW) };
    const inFlight = planBudgetWait("research", { ...base, refusal: "in_flight", next_window_at: "2026-11-30T00:00:00.000Z" });
    expect(inFlight.until).toBe("2026-11-29T15:00:30.000Z");
    expect(inFlight.notify).toBe(false);
    expect(inFlight.reason).toBe("waiting for calls in flight to settle ($0.0034 settled + $0.0337 in flight of research's $0.0500 daily budget; the next call needs up to $0.0337)");
    const settled = planBudgetWait("research", { ...base, refusal: "settled", next_window_at: "2026-11-29T15:05:00.000Z" });
    expect(settled).toMatchObject({ until: "2026-11-29T15:05:00.000Z", notify: true });
    expect(settled.reason).toMatch(/^daily budget spent \(.*\); resumes at 2026-11-29T15:05:00.000Z or when the cap is raised$/);
    expect(planBudgetWait("research", { ...base, refusal: "settled", next_window_at: "2026-11-30T00:00:00.000Z" }).until).toBe("2026-11-30T00:00:00.000Z");
  });
});

describe("a raised cap", () => {
  test("records budget/agent.freed in the outbox when the agent has tasks waiting for money, once per raise", async () => {
    const agent = await createAgent(sb.databaseUrl, { capMicros: 10_000 });
    const waiting = await createTask(sb.databaseUrl, agent);
    const events = () => sql<{ name: string; data: { agent_id: string; reason: string } }>(
      sb.databaseUrl, `select name, data from public.outbox where name = 'budget/agent.freed' and data ->> 'agent_id' = $1`, [agent]);
    // No task waits: nothing to wake.
    await setCap(sb.databaseUrl, agent, 20_000);
    expect(await events()).toEqual([]);
    await sql(sb.databaseUrl, `update public.tasks set status = 'waiting_budget' where id = $1`, [waiting]);
    // Lowered: nothing. Raised (by SQL, as PATCH /api/agents and the console do through their function): one wake-up.
    await setCap(sb.databaseUrl, agent, 15_000);
    expect(await events()).toEqual([]);
    await setCap(sb.databaseUrl, agent, 30_000);
    await setCap(sb.databaseUrl, agent, 40_000);
    expect(await events()).toEqual([
      { name: "budget/agent.freed", data: { agent_id: agent, reason: "cap_raised" } },
      { name: "budget/agent.freed", data: { agent_id: agent, reason: "cap_raised" } },
    ]);
  });
});
