// The rate limiter's line within a priority follows the task's age (20261202101000_pacing_task_age_backfill.sql): a
// call of an older task goes before calls of younger tasks even when it asks later (a chain's next turn keeps its
// task's place), under concurrent callers, and never more than the bucket holds.
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, expect, test } from "vitest";
import { takeRateLimit } from "../../../lib/pacing";
import { createTestSupabase, type TestSupabase } from "../../support/supabase";
import { sql } from "../db/sql";
import { createAgent, createTask } from "./helpers";

let sb: TestSupabase;
const T0 = Date.parse("2026-11-29T03:00:00Z");
const at = (s: number) => new Date(T0 + s * 1000);

beforeAll(async () => {
  sb = await createTestSupabase();
});
afterAll(async () => {
  await sb?.stop();
});

test("within a priority the oldest tasks go first, whenever their calls first asked; concurrent askers never take more than the bucket", async () => {
  // 60,000 input tokens a minute (1,000 a second). Each call needs 3,000: setting the line back by 3 s, so the
  // backfill (≤ 1 s) never applies and the order alone decides.
  const m = `claude-test-${randomBytes(4).toString("hex")}`;
  await sql(sb.databaseUrl, `insert into public.rate_limits (model, input_tokens_per_minute) values ($1, 60000)`, [m]);
  const agent = await createAgent(sb.databaseUrl, { capMicros: 1_000_000 });
  // Tasks in submission order (created_at increasing): the oldest first. Their tickets are named so that sorting by
  // ticket gives the reverse order (the old rule broke ties between equal first-ask times by ticket).
  const tasks: string[] = [];
  for (let i = 0; i < 11; i++) tasks.push(await createTask(sb.databaseUrl, agent));
  const ticket = (i: number) => `${String(10 - i).padStart(2, "0")}:turn-3`;
  const ask = (i: number, s: number) => takeRateLimit(sb.admin, { model: m, ticket: ticket(i), priority: 0, inputTokens: 3_000, outputTokens: 0, taskId: tasks[i], now: at(s) });

  expect((await takeRateLimit(sb.admin, { model: m, ticket: "fill", priority: 0, inputTokens: 60_000, outputTokens: 0, now: at(0) })).ok).toBe(true);
  // At 1 s tasks 1..10 ask at once, in a shuffled order: 1,000 tokens, nobody fits; each leaves a ticket.
  const first = [7, 2, 10, 5, 1, 9, 3, 8, 4, 6];
  const r1 = await Promise.all(first.map((i) => ask(i, 1)));
  expect(r1.every((r) => !r.ok)).toBe(true);

  // At 10 s (10,000 tokens: three calls) task 0 — the oldest, whose call had not asked before (a chain's next turn) —
  // asks for the first time, and goes ahead of the ten tickets that asked at 1 s (by first-ask time it would wait
  // behind 30,000 tokens). Then all of them ask again at once: the next two oldest are admitted, 1 and 2. (Task 0
  // asks first, not among them: a call that has not asked yet has no ticket, so concurrent with them it may come
  // after 3 took the last room — CI caught that ordering once.)
  const r0 = await ask(0, 10);
  const order = [4, 10, 8, 2, 6, 1, 9, 3, 7, 5];
  const r2 = await Promise.all(order.map((i) => ask(i, 10)));
  const admitted = [...(r0.ok ? [0] : []), ...order.filter((_, k) => r2[k]!.ok)].sort((a, b) => a - b);
  expect(admitted).toEqual([0, 1, 2]);
  // Never more than the bucket held.
  expect(admitted.length * 3_000).toBeLessThanOrEqual(10_000);
  const [row] = await sql<{ input_available: number }>(sb.databaseUrl, `select input_available from public.rate_limits where model = $1`, [m]);
  expect(row!.input_available).toBeGreaterThanOrEqual(0);

  // The rest keep their places: at 19 s (1,000 + 9,000 refilled) the next three oldest go, in any arrival order.
  const rest = [9, 3, 7, 5, 10, 8, 4, 6];
  const r3 = await Promise.all(rest.map((i) => ask(i, 19)));
  expect(rest.filter((_, k) => r3[k]!.ok).sort((a, b) => a - b)).toEqual([3, 4, 5]);
  // A younger task's call that asks later never passes them: a new task (12th) asking at 28 s waits behind 6..10.
  const young = await createTask(sb.databaseUrl, agent);
  const y = await takeRateLimit(sb.admin, { model: m, ticket: "00:young", priority: 0, inputTokens: 3_000, outputTokens: 0, taskId: young, now: at(28) });
  expect(y.ok).toBe(false);
  const r4 = await Promise.all([6, 7, 8].map((i) => ask(i, 28)));
  expect(r4.map((r) => r.ok)).toEqual([true, true, true]);
});

test("the backfill under 30 concurrent callers: only what the nearly full bucket would lose, never more than the buckets hold", async () => {
  const m = `claude-test-${randomBytes(4).toString("hex")}`;
  await sql(sb.databaseUrl, `insert into public.rate_limits (model, input_tokens_per_minute, output_tokens_per_minute) values ($1, 6000, 12000)`, [m]);
  expect((await takeRateLimit(sb.admin, { model: m, ticket: "fill", priority: 0, inputTokens: 5_700, outputTokens: 0, now: at(0) })).ok).toBe(true);
  // A waits for input (3,000 with 300 in the bucket: 27 s); the output bucket is full.
  expect((await takeRateLimit(sb.admin, { model: m, ticket: "a", priority: 0, inputTokens: 3_000, outputTokens: 100, now: at(0) })).ok).toBe(false);
  // 30 calls of 50 input and 1,000 output at once: each would set A back 0.5 s. The output bucket is ≥ 75 % full for
  // exactly four of them (12,000, 11,000, 10,000, 9,000 before each), whatever the order they arrive in.
  const r = await Promise.all(Array.from({ length: 30 }, (_, i) => takeRateLimit(sb.admin, { model: m, ticket: `b${i}`, priority: 0, inputTokens: 50, outputTokens: 1_000, now: at(0) })));
  expect(r.filter((x) => x.ok)).toHaveLength(4);
  const [row] = await sql<{ input_available: number; output_available: number; backfilled: string }>(sb.databaseUrl, `select input_available, output_available, backfilled::text from public.rate_limits where model = $1`, [m]);
  expect(row).toMatchObject({ input_available: 100, output_available: 8_000, backfilled: "4" });
});
