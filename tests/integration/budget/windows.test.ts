// Budget windows are the agent's local calendar days: the cap resets at local midnight, and next_window_at is that
// midnight as an absolute time — right across daylight-saving changes. Times are passed as p_now (the app's clock).
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { reserveBudget, settleBudget } from "../../../lib/budget";
import { createTestSupabase, type TestSupabase } from "../../support/supabase";
import { createAgent, createTask, expectCountersMatchLedger, ledgerCommitted } from "./helpers";

let sb: TestSupabase;
const MODEL = "claude-sonnet-4-6";

beforeAll(async () => {
  sb = await createTestSupabase();
});
afterAll(async () => {
  await sb?.stop();
});

async function agentIn(timezone: string, capMicros = 1_000_000) {
  const agent = await createAgent(sb.databaseUrl, { capMicros, timezone });
  const task = await createTask(sb.databaseUrl, agent);
  let n = 0;
  const reserve = (now: string, amountMicros = capMicros) =>
    reserveBudget(sb.admin, { agentId: agent, taskId: task, stepId: `turn-${++n}`, model: MODEL, amountMicros, now });
  return { agent, task, reserve };
}

describe("budget windows", () => {
  test("in America/New_York, a millisecond before and at local midnight land in different windows; the cap resets", async () => {
    const { agent, task, reserve } = await agentIn("America/New_York");
    // 2026-11-26 23:59:59.999 EST (UTC-5) and 2026-11-27 00:00 EST.
    const before = await reserve("2026-11-27T04:59:59.999Z");
    expect(before).toMatchObject({ ok: true, windowStart: "2026-11-26", nextWindowAt: "2026-11-27T05:00:00.000Z", remainingMicros: 0 });
    expect(await reserve("2026-11-27T04:59:59.999Z", 1)).toMatchObject({ ok: false, windowStart: "2026-11-26", nextWindowAt: "2026-11-27T05:00:00.000Z" });

    // Waking exactly at next_window_at (what step.sleepUntil does) finds the new window.
    const after = await reserve(before.nextWindowAt);
    expect(after).toMatchObject({ ok: true, windowStart: "2026-11-27", nextWindowAt: "2026-11-28T05:00:00.000Z", remainingMicros: 0 });

    // Settling yesterday's reservation today goes to yesterday's window.
    await settleBudget(sb.admin, { taskId: task, stepId: "turn-1", actualMicros: 10_000, now: "2026-11-27T06:00:00Z" });
    expect(await ledgerCommitted(sb.databaseUrl, agent)).toEqual({ "2026-11-26": 10_000, "2026-11-27": 1_000_000 });
    // UTC midnight is not the agent's midnight.
    expect(await reserve("2026-11-27T23:59:59Z", 1)).toMatchObject({ ok: false, windowStart: "2026-11-27" });
    await expectCountersMatchLedger(sb.databaseUrl, agent);
  });

  test("next_window_at across the spring-forward change (2026-03-08, America/New_York): midnight EDT is 04:00Z", async () => {
    const { reserve } = await agentIn("America/New_York", 10_000);
    // 2026-03-07 23:00 EST: the next midnight is still EST.
    expect(await reserve("2026-03-08T04:00:00Z", 1)).toMatchObject({ windowStart: "2026-03-07", nextWindowAt: "2026-03-08T05:00:00.000Z" });
    // 2026-03-08 01:59 EST, just before the clocks jump: the day has only 23 hours.
    expect(await reserve("2026-03-08T06:59:00Z", 1)).toMatchObject({ windowStart: "2026-03-08", nextWindowAt: "2026-03-09T04:00:00.000Z" });
    expect(await reserve("2026-03-09T03:59:59Z", 1)).toMatchObject({ windowStart: "2026-03-08" });
    expect(await reserve("2026-03-09T04:00:00Z", 1)).toMatchObject({ windowStart: "2026-03-09", nextWindowAt: "2026-03-10T04:00:00.000Z" });
  });

  test("across the fall-back change (2026-11-01, America/New_York) the window lasts 25 hours", async () => {
    const { reserve } = await agentIn("America/New_York", 10_000);
    expect(await reserve("2026-11-01T03:59:59Z", 1)).toMatchObject({ windowStart: "2026-10-31", nextWindowAt: "2026-11-01T04:00:00.000Z" });
    expect(await reserve("2026-11-01T04:00:00Z", 1)).toMatchObject({ windowStart: "2026-11-01", nextWindowAt: "2026-11-02T05:00:00.000Z" });
    // 23:30 EST on Nov 1 is 04:30Z on Nov 2: still the 1st.
    expect(await reserve("2026-11-02T04:30:00Z", 1)).toMatchObject({ windowStart: "2026-11-01" });
    expect(await reserve("2026-11-02T05:00:00Z", 1)).toMatchObject({ windowStart: "2026-11-02", nextWindowAt: "2026-11-03T05:00:00.000Z" });
  });

  test("where midnight itself is skipped (America/Sao_Paulo, 2018-11-04), the window turns at 01:00 local", async () => {
    const { reserve } = await agentIn("America/Sao_Paulo", 10_000);
    // 2018-11-03 22:00 at UTC-3; the clocks then jumped from 00:00 to 01:00 (UTC-2).
    const r = await reserve("2018-11-04T01:00:00Z", 1);
    expect(r).toMatchObject({ windowStart: "2018-11-03", nextWindowAt: "2018-11-04T03:00:00.000Z" });
    expect(await reserve(r.nextWindowAt, 1)).toMatchObject({ windowStart: "2018-11-04" });
  });

  test("east of UTC (Asia/Tokyo) the window turns at 15:00Z", async () => {
    const { reserve } = await agentIn("Asia/Tokyo");
    expect(await reserve("2026-11-26T14:59:59Z")).toMatchObject({ ok: true, windowStart: "2026-11-26", nextWindowAt: "2026-11-26T15:00:00.000Z" });
    expect(await reserve("2026-11-26T15:00:00Z")).toMatchObject({ ok: true, windowStart: "2026-11-27" });
  });
});
