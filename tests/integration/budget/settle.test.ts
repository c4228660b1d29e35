// settle_budget and release_budget through supabase-js: a settle below the reservation gives the difference back,
// repeats change nothing, the task's cost grows exactly once, and a release gives everything back.
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { BudgetError, releaseBudget, releaseOpenReservations, reserveBudget, settleBudget } from "../../../lib/budget";
import { createTestSupabase, type TestSupabase } from "../../support/supabase";
import { sql } from "../db/sql";
import { createAgent, createTask, expectCountersMatchLedger, ledgerCommitted, liveReservations, taskCost } from "./helpers";

let sb: TestSupabase;
const NOW = "2026-11-26T15:00:00Z";
const DAY = "2026-11-26";
const MODEL = "claude-haiku-4-5";

beforeAll(async () => {
  sb = await createTestSupabase();
});
afterAll(async () => {
  await sb?.stop();
});

async function setup(capMicros: number) {
  const agent = await createAgent(sb.databaseUrl, { capMicros, model: MODEL });
  const task = await createTask(sb.databaseUrl, agent);
  const reserve = (stepId: string, amountMicros: number, taskId = task) =>
    reserveBudget(sb.admin, { agentId: agent, taskId, stepId, model: MODEL, amountMicros, now: NOW });
  return { agent, task, reserve };
}

describe("settle_budget", () => {
  test("settling below the reservation gives the difference back: a reservation that only fits thanks to it succeeds", async () => {
    const { agent, task, reserve } = await setup(1_000_000);
    expect((await reserve("turn-1", 600_000)).ok).toBe(true);
    expect((await reserve("turn-2", 600_000)).ok).toBe(false); // 600k + 600k > 1M

    const usage = { input_tokens: 1200, output_tokens: 300, cache_creation_input_tokens: 0, cache_read_input_tokens: 5000 };
    const settled = await settleBudget(sb.admin, { taskId: task, stepId: "turn-1", actualMicros: 200_000, usage, now: NOW });
    expect(settled).toMatchObject({ settled: true, reservedMicros: 600_000, actualMicros: 200_000, remainingMicros: 800_000, windowStart: DAY });

    expect(await reserve("turn-2", 600_000)).toMatchObject({ ok: true, remainingMicros: 200_000 });
    expect(await ledgerCommitted(sb.databaseUrl, agent)).toEqual({ [DAY]: 800_000 });
    const [row] = await sql<Record<string, unknown>>(
      sb.databaseUrl,
      `select status::text, actual_micros::int, input_tokens, output_tokens, cache_creation_input_tokens, cache_read_input_tokens
         from public.budget_reservations where task_id = $1 and step_id = 'turn-1'`,
      [task],
    );
    expect(row).toEqual({ status: "settled", actual_micros: 200_000, input_tokens: 1200, output_tokens: 300, cache_creation_input_tokens: 0, cache_read_input_tokens: 5000 });
    await expectCountersMatchLedger(sb.databaseUrl, agent);
  });

  test("settling twice changes nothing, and tasks.cost_micros grows exactly once — also under 20 concurrent settles", async () => {
    const { agent, task, reserve } = await setup(1_000_000);
    await reserve("turn-1", 300_000);
    await reserve("turn-2", 300_000);
    const before = await taskCost(sb.databaseUrl, task);

    const first = await settleBudget(sb.admin, { taskId: task, stepId: "turn-1", actualMicros: 123_456, now: NOW });
    const second = await settleBudget(sb.admin, { taskId: task, stepId: "turn-1", actualMicros: 999, now: NOW });
    expect(first.settled).toBe(true);
    expect(second).toEqual({ ...first, settled: false }); // the first settlement's figures
    expect(await taskCost(sb.databaseUrl, task)).toBe(before + 123_456);

    const concurrent = await Promise.all(
      Array.from({ length: 20 }, (_, i) => settleBudget(sb.admin, { taskId: task, stepId: "turn-2", actualMicros: 50_000 + i, now: NOW })),
    );
    expect(concurrent.filter((s) => s.settled)).toHaveLength(1);
    const winner = concurrent.find((s) => s.settled)!;
    expect(new Set(concurrent.map((s) => s.actualMicros))).toEqual(new Set([winner.actualMicros]));
    expect(await taskCost(sb.databaseUrl, task)).toBe(before + 123_456 + winner.actualMicros);
    expect(await ledgerCommitted(sb.databaseUrl, agent)).toEqual({ [DAY]: 123_456 + winner.actualMicros });
    await expectCountersMatchLedger(sb.databaseUrl, agent);
  });

  test("an actual above the reservation is charged in full (money spent is never lost), and the window then refuses", async () => {
    const { agent, task, reserve } = await setup(250_000);
    await reserve("turn-1", 100_000);
    const s = await settleBudget(sb.admin, { taskId: task, stepId: "turn-1", actualMicros: 300_000, now: NOW });
    expect(s).toMatchObject({ settled: true, reservedMicros: 100_000, actualMicros: 300_000, remainingMicros: 0 });
    expect(await ledgerCommitted(sb.databaseUrl, agent)).toEqual({ [DAY]: 300_000 });
    expect(await taskCost(sb.databaseUrl, task)).toBe(300_000);
    expect(await reserve("turn-2", 1)).toMatchObject({ ok: false, remainingMicros: 0 });
    await expectCountersMatchLedger(sb.databaseUrl, agent);
  });

  test("settling a step that holds no reservation fails loudly (NSB04) and records nothing", async () => {
    const { agent, task, reserve } = await setup(1_000_000);
    const err = await settleBudget(sb.admin, { taskId: task, stepId: "turn-9", actualMicros: 1, now: NOW }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BudgetError);
    expect((err as BudgetError).code).toBe("NSB04");

    await reserve("turn-1", 1_000);
    await releaseBudget(sb.admin, { taskId: task, stepId: "turn-1", now: NOW });
    const afterRelease = await settleBudget(sb.admin, { taskId: task, stepId: "turn-1", actualMicros: 1, now: NOW }).catch((e: unknown) => e);
    expect((afterRelease as BudgetError).code).toBe("NSB04");
    expect(await taskCost(sb.databaseUrl, task)).toBe(0);
    expect(await ledgerCommitted(sb.databaseUrl, agent)).toEqual({ [DAY]: 0 });
  });
});

describe("release_budget", () => {
  test("gives the whole reservation back; a second release changes nothing", async () => {
    const { agent, task, reserve } = await setup(1_000_000);
    await reserve("turn-1", 700_000);
    expect((await reserve("turn-2", 700_000)).ok).toBe(false);

    expect(await releaseBudget(sb.admin, { taskId: task, stepId: "turn-1", now: NOW })).toBe(true);
    expect(await releaseBudget(sb.admin, { taskId: task, stepId: "turn-1", now: NOW })).toBe(false);
    expect(await ledgerCommitted(sb.databaseUrl, agent)).toEqual({ [DAY]: 0 });
    expect(await reserve("turn-2", 1_000_000)).toMatchObject({ ok: true, remainingMicros: 0 });
    expect(await taskCost(sb.databaseUrl, task)).toBe(0);
    await expectCountersMatchLedger(sb.databaseUrl, agent);
  });

  test("20 concurrent releases of one reservation give it back once", async () => {
    const { agent, task, reserve } = await setup(1_000_000);
    await reserve("turn-1", 400_000);
    await reserve("turn-2", 100_000);
    const results = await Promise.all(Array.from({ length: 20 }, () => releaseBudget(sb.admin, { taskId: task, stepId: "turn-1", now: NOW })));
    expect(results.filter(Boolean)).toHaveLength(1);
    expect(await ledgerCommitted(sb.databaseUrl, agent)).toEqual({ [DAY]: 100_000 });
    await expectCountersMatchLedger(sb.databaseUrl, agent);
  });

  test("a settled reservation cannot be released: release after settle changes nothing", async () => {
    const { agent, task, reserve } = await setup(1_000_000);
    await reserve("turn-1", 500_000);
    await settleBudget(sb.admin, { taskId: task, stepId: "turn-1", actualMicros: 80_000, now: NOW });
    expect(await releaseBudget(sb.admin, { taskId: task, stepId: "turn-1", now: NOW })).toBe(false);
    expect(await ledgerCommitted(sb.databaseUrl, agent)).toEqual({ [DAY]: 80_000 });
    expect(await taskCost(sb.databaseUrl, task)).toBe(80_000);
    expect((await liveReservations(sb.databaseUrl, task, "turn-1")).map((r) => r.status)).toEqual(["settled"]);
  });

  test("releasing a step that never reserved (e.g. after a refusal) is a harmless no-op", async () => {
    const { task } = await setup(0);
    expect(await releaseBudget(sb.admin, { taskId: task, stepId: "turn-1", now: NOW })).toBe(false);
  });

  test("releaseOpenReservations gives back every open reservation of a failed task, once; settled spend stays", async () => {
    const { agent, task, reserve } = await setup(1_000_000);
    const other = await createTask(sb.databaseUrl, agent);
    await reserve("turn-1", 100_000);
    await settleBudget(sb.admin, { taskId: task, stepId: "turn-1", actualMicros: 30_000, now: NOW });
    await reserve("turn-2", 200_000);
    await reserve("turn-3", 300_000);
    await reserve("turn-1", 50_000, other);
    await reserveBudget(sb.admin, { agentId: agent, taskId: task, stepId: "turn-4", model: MODEL, amountMicros: 100_000, now: "2026-11-27T15:00:00Z" });

    expect(await releaseOpenReservations(sb.admin, task, NOW)).toBe(3);
    expect(await releaseOpenReservations(sb.admin, task, NOW)).toBe(0);
    expect(await ledgerCommitted(sb.databaseUrl, agent)).toEqual({ [DAY]: 80_000, "2026-11-27": 0 });
    expect(await taskCost(sb.databaseUrl, task)).toBe(30_000);
    await expectCountersMatchLedger(sb.databaseUrl, agent);
  });

  test("settle racing release: exactly one wins and the counters stay equal to the ledger", async () => {
    const { agent, task, reserve } = await setup(10_000_000);
    for (let i = 1; i <= 20; i++) await reserve(`turn-${i}`, 100_000);
    const outcomes = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        Promise.all([
          settleBudget(sb.admin, { taskId: task, stepId: `turn-${i + 1}`, actualMicros: 40_000, now: NOW }).then(
            (s) => s.settled,
            () => false, // NSB04: the release came first
          ),
          releaseBudget(sb.admin, { taskId: task, stepId: `turn-${i + 1}`, now: NOW }),
        ]),
      ),
    );
    for (const [settled, released] of outcomes) expect(settled !== released).toBe(true);
    const settledCount = outcomes.filter(([s]) => s).length;
    expect(await taskCost(sb.databaseUrl, task)).toBe(settledCount * 40_000);
    expect(await ledgerCommitted(sb.databaseUrl, agent)).toEqual({ [DAY]: settledCount * 40_000 });
    await expectCountersMatchLedger(sb.databaseUrl, agent);
  });
});
