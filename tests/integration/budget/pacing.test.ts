// Token-weighted pacing on the real database (issue 13): per-model buckets of requests, input and output tokens per
// minute, shared by every process; priority first; a 429's retry-after obeyed but bounded; calibration from headers.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { MAX_RETRY_AFTER_SECONDS, admissionOutputTokens, expectedOutputTokens, noteRateLimited, readRateLimitHeaders, returnRateLimit, settleRateLimit, takeRateLimit } from "../../../lib/pacing";
import { createTestSupabase, type TestSupabase } from "../../support/supabase";
import { sql } from "../db/sql";
import { createAgent, createTask } from "./helpers";

const run = promisify(execFile);
let sb: TestSupabase;
const T0 = Date.parse("2026-11-29T02:00:00Z");
const at = (s: number) => new Date(T0 + s * 1000);

beforeAll(async () => {
  sb = await createTestSupabase();
});
afterAll(async () => {
  await sb?.stop();
});

async function model(limits: { rpm?: number; itpm?: number; otpm?: number }): Promise<string> {
  const name = `claude-test-${randomBytes(4).toString("hex")}`;
  await sql(
    sb.databaseUrl,
    `insert into public.rate_limits (model, requests_per_minute, input_tokens_per_minute, output_tokens_per_minute) values ($1, $2, $3, $4)`,
    [name, limits.rpm ?? null, limits.itpm ?? null, limits.otpm ?? null],
  );
  return name;
}

interface ChildResult { admitted: number; input: number; output: number; waits: string[] }
async function child(m: string, count: number, now: Date, tag: string, input: number, output: number, actual?: number): Promise<ChildResult> {
  const { stdout } = await run(
    process.execPath,
    // react-server: lib/db/admin.ts is `server-only`, as in the app
    ["--conditions=react-server", "--import", "tsx", "tests/integration/budget/pacing-child.ts", sb.supabaseUrl, sb.secretKey, m, String(count), now.toISOString(), tag, String(input), String(output), ...(actual === undefined ? [] : [String(actual)])],
    { timeout: 120_000 },
  );
  return JSON.parse(stdout.trim().split("\n").pop()!) as ChildResult;
}

describe("the shared limiter", () => {
  test("two processes hammering one model never get more than its tokens per minute", async () => {
    const m = await model({ rpm: 1_000, itpm: 10_000, otpm: 2_000 });
    // Both processes at the same instant: the full bucket holds 10,000 input tokens = 14 calls of 700.
    const [a, b] = await Promise.all([child(m, 20, at(0), "a", 700, 100), child(m, 20, at(0), "b", 700, 100)]);
    expect(a.input + b.input).toBeLessThanOrEqual(10_000);
    expect(a.admitted + b.admitted).toBe(14);
    for (const w of [...a.waits, ...b.waits]) expect(Date.parse(w) - T0).toBeLessThanOrEqual(60_000);

    // 30 s later the bucket has refilled 5,000 more: the same callers again get at most that (plus the 200 left).
    const [c, d] = await Promise.all([child(m, 20, at(30), "a", 700, 100), child(m, 20, at(30), "b", 700, 100)]);
    expect(a.input + b.input + c.input + d.input).toBeLessThanOrEqual(10_000 + 5_000);
    expect(c.admitted + d.admitted).toBe(7);
    // Output tokens are a limit of their own: 2,000/min at 400 each admits 5 at once.
    const o = await model({ otpm: 2_000 });
    const out = await Promise.all(
      Array.from({ length: 12 }, (_, i) => takeRateLimit(sb.admin, { model: o, ticket: `o${i}`, priority: 0, inputTokens: 10, outputTokens: 400, now: at(0) })),
    );
    expect(out.filter((r) => r.ok)).toHaveLength(5);
  }, 180_000);

  test("output is taken at the expectation and corrected by the answer: two processes, no lost update, debt repaid before more goes out", async () => {
    const m = await model({ otpm: 3_000 });
    // Each call is expected to produce 100 tokens and produces 250: admitted on 100, charged 150 more when it ends.
    const [a, b] = await Promise.all([child(m, 20, at(0), "a", 10, 100, 250), child(m, 20, at(0), "b", 10, 100, 250)]);
    const admitted = a.admitted + b.admitted;
    expect(a.output + b.output).toBe(admitted * 100);
    // Every admission found the expectation free, so the real output passes the minute's limit by at most the excess
    // of the calls in flight at the time (here: at most all of them).
    expect(admitted).toBeGreaterThanOrEqual(12);
    expect(admitted).toBeLessThanOrEqual(30);
    // Every correction landed (row locks, no lost update): the bucket owes exactly what went out beyond the limit.
    const [row] = await sql<{ output_available: number }>(sb.databaseUrl, `select output_available from public.rate_limits where model = $1`, [m]);
    expect(row!.output_available).toBeCloseTo(3_000 - admitted * 250, 6);
    // Nothing more goes out until the debt is repaid and the expectation fits again: the earliest admission is when
    // the bucket (refilling 50 a second) holds 100 again. (The refused callers' tickets are dropped, as if they gave up.)
    await sql(sb.databaseUrl, `delete from public.rate_limit_waiters where model = $1`, [m]);
    const due = (100 - row!.output_available) / 50;
    const early = await takeRateLimit(sb.admin, { model: m, ticket: "late", priority: 0, inputTokens: 10, outputTokens: 100, now: at(Math.max(0, due - 1)) });
    expect(early.ok).toBe(false);
    expect(Date.parse(early.waitUntil!)).toBeCloseTo(T0 + due * 1000, -2);
    expect((await takeRateLimit(sb.admin, { model: m, ticket: "late", priority: 0, inputTokens: 10, outputTokens: 100, now: at(due + 0.01) })).ok).toBe(true);
  }, 180_000);

  test("the expected output is learned per agent and model from real answers", async () => {
    const m = await model({ otpm: 10_000 });
    const agent = await createAgent(sb.databaseUrl, { capMicros: 10_000_000, model: m });
    // No history at all: a quarter of max_tokens.
    expect(await expectedOutputTokens(sb.admin, { agentId: agent, model: m, maxTokens: 2_048 })).toBe(512);
    const task = await createTask(sb.databaseUrl, agent);
    for (const [i, out] of [120, 120, 600, 121].entries()) {
      await sql(
        sb.databaseUrl,
        `insert into public.budget_reservations (agent_id, task_id, step_id, model, window_start, reserved_micros, actual_micros, status, output_tokens, reserved_at, settled_at)
         values ($1, $2, $3, $4, current_date, 1000, 100, 'settled', $5, now(), now() + make_interval(secs => $6))`,
        [agent, task, `turn-${i}`, m, out, i],
      );
    }
    // A lost call written off as an estimate does not teach anything.
    await sql(
      sb.databaseUrl,
      `insert into public.budget_reservations (agent_id, task_id, step_id, model, window_start, reserved_micros, actual_micros, status, estimated, output_tokens, reserved_at, settled_at)
       values ($1, $2, 'turn-9', $3, current_date, 1000, 1000, 'settled', true, 2000, now(), now() + interval '1 minute')`,
      [agent, task, m],
    );
    expect(await expectedOutputTokens(sb.admin, { agentId: agent, model: m, maxTokens: 2_048 })).toBe(241); // ceil(961 / 4)
    expect(await expectedOutputTokens(sb.admin, { agentId: agent, model: m, maxTokens: 200 })).toBe(200);
    // An agent new to the model starts from every agent's calls of it.
    expect(await expectedOutputTokens(sb.admin, { agentId: "someone-else", model: m, maxTokens: 512 })).toBe(241);
    expect(await expectedOutputTokens(sb.admin, { agentId: agent, model: `${m}-other`, maxTokens: 1_000 })).toBe(250);
  });

  test("admission takes max_tokens until the agent's own answers calibrate it (not other agents' mean, not a quarter)", async () => {
    const m = await model({ otpm: 10_000 });
    const agent = await createAgent(sb.databaseUrl, { capMicros: 10_000_000, model: m });
    const other = await createAgent(sb.databaseUrl, { capMicros: 10_000_000, model: m });
    const admission = (agentId: string, maxTokens = 2_048) => admissionOutputTokens(sb.admin, { agentId, model: m, maxTokens });
    const settle = async (agentId: string, outs: number[], estimated = false) => {
      const task = await createTask(sb.databaseUrl, agentId);
      for (const [i, out] of outs.entries()) {
        await sql(
          sb.databaseUrl,
          `insert into public.budget_reservations (agent_id, task_id, step_id, model, window_start, reserved_micros, actual_micros, status, estimated, output_tokens, reserved_at, settled_at)
           values ($1, $2, $3, $4, current_date, 1000, 100, 'settled', $5, $6, now(), now() + make_interval(secs => $7))`,
          [agentId, task, `turn-${i}`, m, estimated, out, i],
        );
      }
    };
    expect(await admission(agent)).toBe(2_048); // no history: the worst case (the estimate would say 512)
    await settle(other, [120, 120, 120, 120]);
    expect(await expectedOutputTokens(sb.admin, { agentId: agent, model: m, maxTokens: 2_048 })).toBe(120);
    expect(await admission(agent)).toBe(2_048); // another agent's answers say nothing about this one's
    await settle(agent, [900, 1_000]);
    await settle(agent, [5_000], true); // a lost call's estimate teaches nothing
    expect(await admission(agent)).toBe(2_048); // two answers are not a calibration
    await settle(agent, [1_100]);
    expect(await admission(agent)).toBe(1_000); // three: their mean
    expect(await admission(agent, 512)).toBe(512); // never above max_tokens
    expect(await admission(other)).toBe(120);
  });

  test("a model's first calibration starts from the provider's remaining figures, not from an empty bucket", async () => {
    const m = `claude-uncalibrated-${randomBytes(3).toString("hex")}`;
    // Unpaced while nothing is known (the call creates the row)...
    expect((await takeRateLimit(sb.admin, { model: m, ticket: "first", priority: 0, inputTokens: 500, outputTokens: 100, now: at(0) })).ok).toBe(true);
    // ...then the answer's headers set the limits and what is left.
    const headers = readRateLimitHeaders(new Headers({
      "anthropic-ratelimit-requests-limit": "50", "anthropic-ratelimit-requests-remaining": "49",
      "anthropic-ratelimit-input-tokens-limit": "30000", "anthropic-ratelimit-input-tokens-remaining": "29500",
      "anthropic-ratelimit-output-tokens-limit": "8000", "anthropic-ratelimit-output-tokens-remaining": "7900",
    }));
    await settleRateLimit(sb.admin, { model: m, ticket: "first", refundInput: 0, refundOutput: 0, headers, now: at(0) });
    const [row] = await sql<Record<string, number>>(sb.databaseUrl, `select requests_available, input_available, output_available from public.rate_limits where model = $1`, [m]);
    expect(row).toEqual({ requests_available: 49, input_available: 29_500, output_available: 7_900 });
    expect((await takeRateLimit(sb.admin, { model: m, ticket: "second", priority: 0, inputTokens: 20_000, outputTokens: 5_000, now: at(0) })).ok).toBe(true);
  });

  test("a model with no known limits is not paced; a call larger than a minute's limit runs when the bucket is full", async () => {
    const free = `claude-free-${randomBytes(3).toString("hex")}`;
    for (let i = 0; i < 5; i++) expect((await takeRateLimit(sb.admin, { model: free, ticket: `t${i}`, priority: 0, inputTokens: 1e6, outputTokens: 1e5, now: at(0) })).ok).toBe(true);
    const m = await model({ itpm: 1_000 });
    expect(await takeRateLimit(sb.admin, { model: m, ticket: "big", priority: 0, inputTokens: 5_000, outputTokens: 10, now: at(0) })).toMatchObject({ ok: true, inputTaken: 1_000 });
    expect(await takeRateLimit(sb.admin, { model: m, ticket: "next", priority: 0, inputTokens: 100, outputTokens: 10, now: at(0) })).toMatchObject({ ok: false, dimension: "input_tokens", waitUntil: at(6).toISOString() });
  });

  test("priority decides who goes first when tokens are short", async () => {
    const m = await model({ itpm: 6_000 });
    expect((await takeRateLimit(sb.admin, { model: m, ticket: "fill", priority: 0, inputTokens: 6_000, outputTokens: 0, now: at(0) })).ok).toBe(true);
    // A low-priority call waits first, then a high-priority one.
    const low = await takeRateLimit(sb.admin, { model: m, ticket: "low", priority: -5, inputTokens: 1_000, outputTokens: 0, now: at(1) });
    const high = await takeRateLimit(sb.admin, { model: m, ticket: "high", priority: 10, inputTokens: 1_000, outputTokens: 0, now: at(2) });
    expect(low.ok || high.ok).toBe(false);
    // At 10 s there are 1,000 tokens: enough for one. The low one asks first and is still refused: high goes first.
    expect((await takeRateLimit(sb.admin, { model: m, ticket: "low", priority: -5, inputTokens: 1_000, outputTokens: 0, now: at(10) })).ok).toBe(false);
    expect((await takeRateLimit(sb.admin, { model: m, ticket: "high", priority: 10, inputTokens: 1_000, outputTokens: 0, now: at(10) })).ok).toBe(true);
    expect((await takeRateLimit(sb.admin, { model: m, ticket: "low", priority: -5, inputTokens: 1_000, outputTokens: 0, now: at(20) })).ok).toBe(true);
  });

  test("an answer gives back what it did not use and calibrates the limits from its headers", async () => {
    const m = await model({ itpm: 10_000, otpm: 4_000 });
    await takeRateLimit(sb.admin, { model: m, ticket: "x", priority: 0, inputTokens: 2_000, outputTokens: 4_000, now: at(0) });
    expect((await takeRateLimit(sb.admin, { model: m, ticket: "y", priority: 0, inputTokens: 10, outputTokens: 1_000, now: at(0) })).ok).toBe(false);
    await settleRateLimit(sb.admin, { model: m, ticket: "x", refundInput: 500, refundOutput: 3_500, headers: readRateLimitHeaders(null), now: at(0) });
    expect((await takeRateLimit(sb.admin, { model: m, ticket: "y", priority: 0, inputTokens: 10, outputTokens: 1_000, now: at(0) })).ok).toBe(true);

    const headers = new Headers({
      "anthropic-ratelimit-requests-limit": "50",
      "anthropic-ratelimit-requests-remaining": "49",
      "anthropic-ratelimit-input-tokens-limit": "30000",
      "anthropic-ratelimit-input-tokens-remaining": "100",
      "anthropic-ratelimit-output-tokens-limit": "8000",
      "anthropic-ratelimit-output-tokens-remaining": "7000",
    });
    await settleRateLimit(sb.admin, { model: m, ticket: "y", refundInput: 0, refundOutput: 0, headers: readRateLimitHeaders(headers), now: at(0) });
    const [row] = await sql<Record<string, unknown>>(sb.databaseUrl, `select * from public.rate_limits where model = $1`, [m]);
    expect(row).toMatchObject({ requests_per_minute: 50, input_tokens_per_minute: 30_000, output_tokens_per_minute: 8_000, source: "headers", input_available: 100 });
  });

  test("backfill: while a bucket is nearly full, a call that sets the tickets ahead back by ≤ 1 s goes first, never past a higher priority", async () => {
    // 6,000 input tokens a minute (100 a second), 12,000 output. Input is nearly gone; the output bucket is full.
    const m = await model({ itpm: 6_000, otpm: 12_000 });
    expect((await takeRateLimit(sb.admin, { model: m, ticket: "fill", priority: 0, inputTokens: 5_900, outputTokens: 0, now: at(0) })).ok).toBe(true);
    // A waits for input (3,000 input: 29 s).
    expect((await takeRateLimit(sb.admin, { model: m, ticket: "a", priority: 0, inputTokens: 3_000, outputTokens: 100, now: at(0) })).ok).toBe(false);
    // B needs 50 input (0.5 s of A's wait) and 1,000 output from the full bucket: admitted ahead of A.
    expect((await takeRateLimit(sb.admin, { model: m, ticket: "b", priority: 0, inputTokens: 50, outputTokens: 1_000, now: at(0) })).ok).toBe(true);
    // C needs 100 input, but the 50 left do not hold it: refused (the buckets' own room is never exceeded).
    expect((await takeRateLimit(sb.admin, { model: m, ticket: "c", priority: 0, inputTokens: 100, outputTokens: 1_000, now: at(0) })).ok).toBe(false);
    // D, E, F (5 input each) find the output bucket at 11,000, 10,000 and 9,000 of 12,000 (≥ 75 %: it would fill up
    // while A waits): admitted. G then finds it at 8,000 (67 %): not being lost, so G waits its turn behind A.
    for (const t of ["d", "e", "f"]) expect((await takeRateLimit(sb.admin, { model: m, ticket: t, priority: 0, inputTokens: 5, outputTokens: 1_000, now: at(0) })).ok).toBe(true);
    expect((await takeRateLimit(sb.admin, { model: m, ticket: "g", priority: 0, inputTokens: 5, outputTokens: 1_000, now: at(0) })).ok).toBe(false);
    const [row] = await sql<{ backfilled: string }>(sb.databaseUrl, `select backfilled::text from public.rate_limits where model = $1`, [m]);
    expect(row!.backfilled).toBe("4");

    // Never past a higher priority: H (priority 5) waits for input; a priority-0 call is not backfilled ahead of it.
    const n = await model({ itpm: 6_000, otpm: 12_000 });
    await takeRateLimit(sb.admin, { model: n, ticket: "fill", priority: 0, inputTokens: 5_900, outputTokens: 0, now: at(0) });
    expect((await takeRateLimit(sb.admin, { model: n, ticket: "h", priority: 5, inputTokens: 3_000, outputTokens: 100, now: at(0) })).ok).toBe(false);
    expect((await takeRateLimit(sb.admin, { model: n, ticket: "b", priority: 0, inputTokens: 50, outputTokens: 1_000, now: at(0) })).ok).toBe(false);
  });

  test("backfill allowance: up to half of what the tickets ahead wait anyway, never moving a ticket past 300 s of waiting", async () => {
    // 6,000 input tokens a minute (100 a second), 12,000 output. A waits for 3,000 input with 100 in the bucket: 29 s.
    const m = await model({ itpm: 6_000, otpm: 12_000 });
    expect((await takeRateLimit(sb.admin, { model: m, ticket: "fill", priority: 0, inputTokens: 5_900, outputTokens: 0, now: at(0) })).ok).toBe(true);
    expect((await takeRateLimit(sb.admin, { model: m, ticket: "a", priority: 0, inputTokens: 3_000, outputTokens: 100, now: at(0) })).ok).toBe(false);
    // At 10 s the bucket holds 1,100 input and A waits 19 s more; the output bucket is full. D (800 input: sets A back
    // 8 s ≤ 19 / 2) goes ahead; E (200 input: 2 s, while A now waits 27 s) too; F (250) does not fit the 100 left.
    expect((await takeRateLimit(sb.admin, { model: m, ticket: "d", priority: 0, inputTokens: 800, outputTokens: 1_000, now: at(10) })).ok).toBe(true);
    expect((await takeRateLimit(sb.admin, { model: m, ticket: "e", priority: 0, inputTokens: 200, outputTokens: 1_000, now: at(10) })).ok).toBe(true);
    expect((await takeRateLimit(sb.admin, { model: m, ticket: "f", priority: 0, inputTokens: 250, outputTokens: 1_000, now: at(10) })).ok).toBe(false);
    // A call that would set the line back by more than half its wait is refused: at 20 s the bucket holds 1,100 input
    // and A and F (3,250) wait 21.5 s; H's 1,100 input would cost them 11 s > 10.75 s.
    expect((await takeRateLimit(sb.admin, { model: m, ticket: "h", priority: 0, inputTokens: 1_100, outputTokens: 1_000, now: at(20) })).ok).toBe(false);

    // The bound: tickets that together wait ~360 s for input (6 × 6,000 = 36,000 tokens at 100 a second) are never
    // moved further by the backfill, however small the call: the oldest would pass 300 s of waiting.
    const n = await model({ itpm: 6_000, otpm: 12_000 });
    expect((await takeRateLimit(sb.admin, { model: n, ticket: "fill", priority: 0, inputTokens: 6_000, outputTokens: 0, now: at(0) })).ok).toBe(true);
    for (let i = 0; i < 6; i++) expect((await takeRateLimit(sb.admin, { model: n, ticket: `q${i}`, priority: 0, inputTokens: 6_000, outputTokens: 10, now: at(1) })).ok).toBe(false);
    // At 3 s the bucket holds 300 input; a 5-input call with a full output bucket delays them 0.05 s — refused anyway.
    expect((await takeRateLimit(sb.admin, { model: n, ticket: "small", priority: 0, inputTokens: 5, outputTokens: 1_000, now: at(3) })).ok).toBe(false);
    // With a short line (one ticket of 600 input: 3 s of wait) the same call goes ahead.
    const k = await model({ itpm: 6_000, otpm: 12_000 });
    expect((await takeRateLimit(sb.admin, { model: k, ticket: "fill", priority: 0, inputTokens: 6_000, outputTokens: 0, now: at(0) })).ok).toBe(true);
    expect((await takeRateLimit(sb.admin, { model: k, ticket: "q", priority: 0, inputTokens: 600, outputTokens: 10, now: at(1) })).ok).toBe(false);
    expect((await takeRateLimit(sb.admin, { model: k, ticket: "small", priority: 0, inputTokens: 5, outputTokens: 1_000, now: at(3) })).ok).toBe(true);
  });

  test("the provider's remaining figures cap our buckets as of when the answer was read, not as of the settlement", async () => {
    // 60,000 input tokens a minute = 1,000 a second. A call takes 30,000 at t=0; the provider answers at t=0 with 30,000
    // remaining, and the settlement runs 2 s later (the budget's settlement and the timeline come first).
    const m = await model({ itpm: 60_000, otpm: 12_000 });
    const headers = readRateLimitHeaders(new Headers({
      "anthropic-ratelimit-input-tokens-limit": "60000",
      "anthropic-ratelimit-input-tokens-remaining": "30000",
      "anthropic-ratelimit-output-tokens-limit": "12000",
      "anthropic-ratelimit-output-tokens-remaining": "11000",
    }));
    const available = async () =>
      (await sql<{ i: number; o: number; ti: string }>(sb.databaseUrl, `select input_available i, output_available o, trimmed_input::text ti from public.rate_limits where model = $1`, [m]))[0]!;
    expect((await takeRateLimit(sb.admin, { model: m, ticket: "a", priority: 0, inputTokens: 30_000, outputTokens: 1_000, now: at(0) })).ok).toBe(true);
    await settleRateLimit(sb.admin, { model: m, ticket: "a", refundInput: 0, refundOutput: 0, headers, now: at(2), observedAt: at(0) });
    // Both buckets refilled 2 s' worth since the answer: nothing was cut.
    expect(await available()).toEqual({ i: 32_000, o: 11_400, ti: "0" });

    // Without the time of the answer the figures are taken as current: the 2 s of refill are cut (counted).
    const n = await model({ itpm: 60_000, otpm: 12_000 });
    await takeRateLimit(sb.admin, { model: n, ticket: "a", priority: 0, inputTokens: 30_000, outputTokens: 1_000, now: at(0) });
    await settleRateLimit(sb.admin, { model: n, ticket: "a", refundInput: 0, refundOutput: 0, headers, now: at(2) });
    const [row] = await sql<{ i: number; ti: string }>(sb.databaseUrl, `select input_available i, trimmed_input::text ti from public.rate_limits where model = $1`, [n]);
    expect(row).toEqual({ i: 30_000, ti: "2000" });

    // Another client of the key used the model meanwhile (the provider has less than we think): its figure still caps.
    const o = await model({ itpm: 60_000 });
    await takeRateLimit(sb.admin, { model: o, ticket: "a", priority: 0, inputTokens: 30_000, outputTokens: 0, now: at(0) });
    const other = readRateLimitHeaders(new Headers({ "anthropic-ratelimit-input-tokens-limit": "60000", "anthropic-ratelimit-input-tokens-remaining": "10000" }));
    await settleRateLimit(sb.admin, { model: o, ticket: "a", refundInput: 0, refundOutput: 0, headers: other, now: at(2), observedAt: at(0) });
    const [row2] = await sql<{ i: number }>(sb.databaseUrl, `select input_available i from public.rate_limits where model = $1`, [o]);
    expect(row2!.i).toBe(12_000);
  });

  test("the provider's output remaining is compared with ours less the output of the calls in flight", async () => {
    // Output is counted by the provider when it is produced, by us when a call is admitted. Three calls in flight
    // (1,000 + 2,000 + 3,000 expected); the first ends, and the provider says 6,500 left: it has counted that call and
    // 3,500 of another client's, not yet the two still running, so what is really free is 6,500 − 5,000.
    const m = await model({ otpm: 12_000 });
    const outHeaders = (remaining: number) => readRateLimitHeaders(new Headers({
      "anthropic-ratelimit-output-tokens-limit": "12000", "anthropic-ratelimit-output-tokens-remaining": String(remaining),
    }));
    const take = (ticket: string, output: number) => takeRateLimit(sb.admin, { model: m, ticket, priority: 0, inputTokens: 10, outputTokens: output, now: at(0) });
    const state = async () => {
      const [r] = await sql<{ o: number }>(sb.databaseUrl, `select output_available o from public.rate_limits where model = $1`, [m]);
      const f = await sql<{ ticket: string }>(sb.databaseUrl, `select ticket from public.rate_limit_in_flight where model = $1 order by ticket`, [m]);
      return { available: r!.o, inFlight: f.map((x) => x.ticket) };
    };
    for (const [t, o] of [["a", 1_000], ["b", 2_000], ["c", 3_000]] as const) expect((await take(t, o)).ok).toBe(true);
    expect(await state()).toEqual({ available: 6_000, inFlight: ["a", "b", "c"] });
    await settleRateLimit(sb.admin, { model: m, ticket: "a", refundInput: 0, refundOutput: 0, headers: outHeaders(6_500), now: at(0), observedAt: at(0) });
    expect(await state()).toEqual({ available: 1_500, inFlight: ["b", "c"] });
    expect((await take("d", 2_000)).ok).toBe(false);
    // b was never sent (its budget was refused): its tokens come back and it is no longer in flight.
    await returnRateLimit(sb.admin, { model: m, ticket: "b", input: 10, output: 2_000, now: at(0) });
    expect(await state()).toEqual({ available: 3_500, inFlight: ["c"] });
    // c meets a 429 (not billed): the provider's figure replaces ours, less what is still in flight (d, now admitted).
    expect((await take("d", 2_000)).ok).toBe(true);
    await noteRateLimited(sb.admin, { model: m, ticket: "c", headers: { ...outHeaders(4_000), retryAfterSeconds: 1 }, now: at(0) });
    expect(await state()).toEqual({ available: 2_000, inFlight: ["d"] });
  });

  test("calls admitted before a model's limits are known are charged at its first calibration: concurrent callers never overdraw the provider", async () => {
    // The provider (simulated here in one process: its bucket is a number) has 10,000 output tokens a minute and the
    // clock stands still (no refill), so every token it counts is a token it has. Six calls go out before anything is
    // known about the model (unpaced); the first answer calibrates it; then 20 callers hit the database at once, then
    // every answer comes back at once. Before this rule the calibration started our bucket at the provider's 8,900,
    // not knowing that five answers (5,500 tokens) were still to be counted: 8 more calls went out and the provider
    // ended 4,400 tokens in debt (a 429 for every request after).
    const m = `claude-uncalibrated-${randomBytes(3).toString("hex")}`;
    const provider = { remaining: 10_000 };
    const OUT = 1_100;
    const answer = async (ticket: string, taken: number) => {
      provider.remaining -= OUT; // the answer ends: the provider counts what it produced
      const headers = readRateLimitHeaders(new Headers({
        "anthropic-ratelimit-output-tokens-limit": "10000", "anthropic-ratelimit-output-tokens-remaining": String(provider.remaining),
      }));
      await settleRateLimit(sb.admin, { model: m, ticket, refundInput: 0, refundOutput: taken - OUT, headers, now: at(0), observedAt: at(0) });
    };
    const calls: { ticket: string; taken: number }[] = [];
    for (let i = 0; i < 6; i++) {
      const r = await takeRateLimit(sb.admin, { model: m, ticket: `early-${i}`, priority: 0, inputTokens: 100, outputTokens: OUT, now: at(0) });
      expect(r.ok).toBe(true); // unpaced: nothing is known yet
      calls.push({ ticket: `early-${i}`, taken: r.outputTaken });
    }
    await answer(calls[0]!.ticket, calls[0]!.taken);
    const late = await Promise.all(
      Array.from({ length: 20 }, (_, i) => takeRateLimit(sb.admin, { model: m, ticket: `late-${i}`, priority: 0, inputTokens: 100, outputTokens: OUT, now: at(0) })),
    );
    late.forEach((r, i) => r.ok && calls.push({ ticket: `late-${i}`, taken: r.outputTaken }));
    expect(late.filter((r) => r.ok)).toHaveLength(3); // (10,000 − 6 × 1,100) / 1,100: what the provider had, no more
    await Promise.all(calls.slice(1).map((c) => answer(c.ticket, c.taken)));
    expect(provider.remaining).toBe(100);
    const [row] = await sql<{ o: number; n: number }>(
      sb.databaseUrl,
      `select output_available o, (select count(*)::int from public.rate_limit_in_flight f where f.model = $1) n from public.rate_limits where model = $1`,
      [m],
    );
    // Nothing is left in flight, and ours never thinks it has more than the provider.
    expect(row!.n).toBe(0);
    expect(row!.o).toBeLessThanOrEqual(provider.remaining);
  });
});

describe("a 429", () => {
  test("retry-after: 3600 is obeyed for at most the bound, the task says so, and the limiter is corrected", async () => {
    const m = await model({ itpm: 10_000 });
    const agent = await createAgent(sb.databaseUrl, { capMicros: 1_000_000, model: m });
    const task = await createTask(sb.databaseUrl, agent);
    await sql(sb.databaseUrl, `update public.tasks set status = 'running' where id = $1`, [task]);
    const headers = readRateLimitHeaders(new Headers({ "retry-after": "3600", "anthropic-ratelimit-input-tokens-limit": "8000", "anthropic-ratelimit-input-tokens-remaining": "0" }));
    expect(headers.retryAfterSeconds).toBe(3600);
    const { retryAt, retryAfterSeconds } = await noteRateLimited(sb.admin, { model: m, ticket: `${task}:turn-1`, headers, taskId: task, now: at(0) });
    expect(retryAfterSeconds).toBe(MAX_RETRY_AFTER_SECONDS);
    expect(retryAt).toBe(at(MAX_RETRY_AFTER_SECONDS).toISOString());
    const [t] = await sql<{ status: string; status_reason: string }>(sb.databaseUrl, `select status::text, status_reason from public.tasks where id = $1`, [task]);
    expect(t).toEqual({ status: "waiting_rate_limit", status_reason: `rate limited by the provider (429) on ${m}; retrying at ${at(MAX_RETRY_AFTER_SECONDS).toISOString().replace(".000", "")}` });

    // Before the bound: nothing goes out for the model, and the waiting call says why and until when.
    const early = await takeRateLimit(sb.admin, { model: m, ticket: "t", priority: 0, inputTokens: 100, outputTokens: 10, taskId: task, now: at(60) });
    expect(early).toMatchObject({ ok: false, dimension: "retry_after", waitUntil: retryAt });
    // At the bound it runs (the provider's figures replaced ours: 8,000/min, refilled from 0 over 300 s), and the task
    // is running again.
    expect(await takeRateLimit(sb.admin, { model: m, ticket: "t", priority: 0, inputTokens: 100, outputTokens: 10, taskId: task, now: new Date(retryAt) })).toMatchObject({ ok: true });
    const [t2] = await sql<{ status: string }>(sb.databaseUrl, `select status::text from public.tasks where id = $1`, [task]);
    expect(t2!.status).toBe("running");
    const [row] = await sql<{ input_tokens_per_minute: number; rate_limited: string }>(sb.databaseUrl, `select input_tokens_per_minute, rate_limited::text from public.rate_limits where model = $1`, [m]);
    expect(row).toEqual({ input_tokens_per_minute: 8_000, rate_limited: "1" });
  });

  test("a paced call marks its task waiting_rate_limit with the model and the expected time", async () => {
    const m = await model({ rpm: 60 });
    const agent = await createAgent(sb.databaseUrl, { capMicros: 1_000_000, model: m });
    const task = await createTask(sb.databaseUrl, agent);
    // It had waited for money: a waiting task is marked running only once admitted, so it is still waiting_budget.
    await sql(sb.databaseUrl, `update public.tasks set status = 'waiting_budget', status_reason = 'stale' where id = $1`, [task]);
    for (let i = 0; i < 60; i++) await takeRateLimit(sb.admin, { model: m, ticket: `f${i}`, priority: 0, inputTokens: 1, outputTokens: 1, now: at(0) });
    const r = await takeRateLimit(sb.admin, { model: m, ticket: "me", priority: 0, inputTokens: 1, outputTokens: 1, taskId: task, now: at(0) });
    expect(r).toMatchObject({ ok: false, dimension: "requests", waitUntil: at(1).toISOString() });
    const [t] = await sql<{ status: string; status_reason: string }>(sb.databaseUrl, `select status::text, status_reason from public.tasks where id = $1`, [task]);
    expect(t).toEqual({ status: "waiting_rate_limit", status_reason: `waiting for the ${m} rate limit (requests) of 60 requests/min; expected to run at 2026-11-29T02:00:01Z` });
  });
});
