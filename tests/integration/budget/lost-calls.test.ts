// Lost calls written off as estimates (issue 13), hammered concurrently on the real database: every lost call is
// charged exactly once however many attempts of its turn race to write it off, each charge is the counted input plus
// the expected output (never below the input cost), the cap still holds while new calls reserve beside the
// write-offs, and the window's counters equal the ledger.
import { afterAll, beforeAll, expect, test } from "vitest";
import { reserveBudget, settleBudget, writeOffLostCalls } from "../../../lib/budget";
import { costMicros } from "../../../lib/llm/prices";
import { createTestSupabase, type TestSupabase } from "../../support/supabase";
import { sql } from "../db/sql";
import { createAgent, createTask, expectCountersMatchLedger, ledgerCommitted } from "./helpers";

let sb: TestSupabase;
const NOW = "2026-11-29T15:00:00Z";
const MODEL = "claude-sonnet-4-6";
const INPUT = 2_000;
const MAX_TOKENS = 4_096;
const RESERVED = 70_000; // ≈ the worst case of 2,000 input + 4,096 output at sonnet's prices

beforeAll(async () => {
  sb = await createTestSupabase();
});
afterAll(async () => {
  await sb?.stop();
});

test("racing write-offs charge each lost call once, at input + expected output, and the cap holds beside new reservations", async () => {
  const cap = 1_000_000;
  const agent = await createAgent(sb.databaseUrl, { capMicros: cap });
  // History: the agent's real calls of the model wrote 300 and 500 output tokens (mean 400).
  for (const [i, out] of [300, 500].entries()) {
    const h = await createTask(sb.databaseUrl, agent);
    await reserveBudget(sb.admin, { agentId: agent, taskId: h, stepId: "turn-1", model: MODEL, amountMicros: RESERVED, now: NOW });
    await settleBudget(sb.admin, {
      taskId: h, stepId: "turn-1", actualMicros: costMicros(MODEL, { input_tokens: INPUT, output_tokens: out }),
      usage: { input_tokens: INPUT, output_tokens: out }, now: `2026-11-29T15:00:0${i + 1}Z`,
    });
  }
  const estimate = costMicros(MODEL, { input_tokens: INPUT, output_tokens: 0 }) + costMicros(MODEL, { input_tokens: 0, output_tokens: 400 });

  // 12 tasks, each with a call in flight whose answer was lost.
  const lostTasks = await Promise.all(Array.from({ length: 12 }, () => createTask(sb.databaseUrl, agent)));
  for (const t of lostTasks) {
    expect(await reserveBudget(sb.admin, { agentId: agent, taskId: t, stepId: "turn-1", model: MODEL, amountMicros: RESERVED, now: NOW })).toMatchObject({ ok: true });
  }
  const committedBefore = Object.values(await ledgerCommitted(sb.databaseUrl, agent))[0]!;
  expect(committedBefore).toBe(12 * RESERVED + costMicros(MODEL, { input_tokens: INPUT, output_tokens: 300 }) + costMicros(MODEL, { input_tokens: INPUT, output_tokens: 500 }));

  // At once: three attempts of every lost turn write it off (a retried step racing an engine retry), while 20 other
  // tasks reserve worst cases that only fit once the write-offs have given the difference back.
  const newcomers = await Promise.all(Array.from({ length: 20 }, () => createTask(sb.databaseUrl, agent)));
  const writeOff = (t: string) => writeOffLostCalls(sb.admin, { taskId: t, turnId: "turn-1", model: MODEL, inputTokens: INPUT, maxTokens: MAX_TOKENS, now: NOW });
  const [offs, reservations] = await Promise.all([
    Promise.all(lostTasks.flatMap((t) => [writeOff(t), writeOff(t), writeOff(t)])),
    Promise.all(newcomers.map((t) => reserveBudget(sb.admin, { agentId: agent, taskId: t, stepId: "turn-1", model: MODEL, amountMicros: RESERVED, now: NOW }))),
  ]);

  // Each lost call was charged exactly once, at the estimate; every attempt got the same next key.
  for (let i = 0; i < lostTasks.length; i++) {
    const three = offs.slice(3 * i, 3 * i + 3);
    expect(three.map((o) => o.writtenOff).sort()).toEqual([0, 0, 1]);
    expect(three.reduce((s, o) => s + o.estimatedMicros, 0)).toBe(estimate);
    expect(new Set(three.map((o) => o.nextKey))).toEqual(new Set(["turn-1#2"]));
  }
  const rows = await sql<{ task_id: string; actual: string; estimated: boolean; output_tokens: number; cost: string; est: string }>(
    sb.databaseUrl,
    `select r.task_id, r.actual_micros::text actual, r.estimated, r.output_tokens, t.cost_micros::text cost, t.estimated_cost_micros::text est
       from public.budget_reservations r join public.tasks t on t.id = r.task_id
      where r.task_id = any($1::uuid[])`,
    [lostTasks],
  );
  expect(rows).toHaveLength(lostTasks.length);
  for (const r of rows) {
    expect(r).toMatchObject({ actual: String(estimate), estimated: true, output_tokens: 400, cost: String(estimate), est: String(estimate) });
    expect(Number(r.actual)).toBeGreaterThanOrEqual(costMicros(MODEL, { input_tokens: INPUT, output_tokens: 0 }));
  }

  // The cap held through the burst; the counters equal the ledger.
  const committed = Object.values(await ledgerCommitted(sb.databaseUrl, agent))[0]!;
  expect(committed).toBeLessThanOrEqual(cap);
  expect(reservations.some((r) => r.ok)).toBe(true);
  await expectCountersMatchLedger(sb.databaseUrl, agent);
  // The estimates count against the cap and are shown apart in the window.
  const [w] = await sql<{ settled: string; estimated: string }>(
    sb.databaseUrl, `select settled_micros::text settled, estimated_micros::text estimated from public.budget_windows where agent_id = $1`, [agent]);
  expect(Number(w!.estimated)).toBe(12 * estimate);
  expect(Number(w!.settled)).toBeGreaterThanOrEqual(12 * estimate);
  // Lost calls do not teach the expected output: the next write-off still expects 400.
  const [row] = await sql<{ expected: number }>(sb.databaseUrl, `select public.expected_output_tokens($1, $2, $3) expected`, [agent, MODEL, MAX_TOKENS]);
  expect(row!.expected).toBe(400);
});
