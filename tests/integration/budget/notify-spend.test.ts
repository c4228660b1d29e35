// The "budget exhausted" notice is recorded once per agent per day, and spend per agent per day, per task and per
// model reads back the settled figures.
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import {
  noteBudgetExhausted,
  releaseBudget,
  reserveBudget,
  settleBudget,
  spendByAgentDay,
  spendByModel,
  spendByTask,
} from "../../../lib/budget";
import { createTestSupabase, type TestSupabase } from "../../support/supabase";
import { sql } from "../db/sql";
import { createAgent, createTask } from "./helpers";

let sb: TestSupabase;

beforeAll(async () => {
  sb = await createTestSupabase();
});
afterAll(async () => {
  await sb?.stop();
});

describe("note_budget_exhausted", () => {
  test("is true once per agent per day, also when called 20 times at once", async () => {
    const agent = await createAgent(sb.databaseUrl, { capMicros: 2_000_000, timezone: "Europe/Berlin" });
    const other = await createAgent(sb.databaseUrl, { capMicros: 1_000_000 });
    const task = await createTask(sb.databaseUrl, agent);
    const note = (agentId: string, windowStart: string, taskId: string | null = task) =>
      noteBudgetExhausted(sb.admin, {
        agentId,
        taskId,
        windowStart,
        nextWindowAt: "2026-11-26T23:00:00Z",
        payload: { step_id: "turn-4" },
        now: "2026-11-26T20:00:00Z",
      });

    const firsts = await Promise.all(Array.from({ length: 20 }, () => note(agent, "2026-11-26")));
    expect(firsts.filter(Boolean)).toHaveLength(1);
    expect(await note(agent, "2026-11-26")).toBe(false);
    expect(await note(agent, "2026-11-27")).toBe(true); // the next day
    expect(await note(other, "2026-11-26", null)).toBe(true); // another agent, not tied to a task

    const rows = await sql<Record<string, unknown>>(
      sb.databaseUrl,
      `select kind, dedupe_key, task_id, title, body, payload, created_at, delivered_at, attempts
         from public.notifications where agent_id = $1 order by dedupe_key`,
      [agent],
    );
    expect(rows).toHaveLength(2);
    expect(rows[0]).toMatchObject({
      kind: "budget_exhausted",
      dedupe_key: `budget_exhausted:${agent}:2026-11-26`,
      task_id: task,
      title: `${agent} agent reached its daily budget`,
      // No window row (nothing reserved in this test): $0.00 settled, nothing in flight.
      body: `The ${agent} agent has spent $0.00 of its $2.00 budget for 2026-11-26 (Europe/Berlin). Its work waits until 2026-11-27 00:00 Europe/Berlin or a higher cap.`,
      payload: {
        agent_id: agent,
        task_id: task,
        window_start: "2026-11-26",
        cap_micros: 2_000_000,
        budget_timezone: "Europe/Berlin",
        next_window_at: "2026-11-26T23:00:00+00:00",
        step_id: "turn-4",
      },
      created_at: new Date("2026-11-26T20:00:00Z"),
      delivered_at: null,
      attempts: 0,
    });
  });
});

describe("spend queries", () => {
  test("per agent per day, per task and per model return the settled figures", async () => {
    const agent = await createAgent(sb.databaseUrl, { capMicros: 5_000_000, timezone: "America/New_York" });
    const [t1, t2] = [await createTask(sb.databaseUrl, agent), await createTask(sb.databaseUrl, agent)];
    const day1 = "2026-11-26T15:00:00Z"; // Nov 26 in New York
    const day2 = "2026-11-27T15:00:00Z";
    const call = async (
      taskId: string,
      stepId: string,
      model: string,
      now: string,
      reserved: number,
      actual: number | "release" | "open",
      usage = { input_tokens: 0, output_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 },
    ) => {
      const r = await reserveBudget(sb.admin, { agentId: agent, taskId, stepId, model, amountMicros: reserved, now });
      expect(r.ok).toBe(true);
      if (actual === "release") await releaseBudget(sb.admin, { taskId, stepId, now });
      else if (actual !== "open") await settleBudget(sb.admin, { taskId, stepId, actualMicros: actual, usage, now });
    };
    const u = (i: number, o: number, cw = 0, cr = 0) => ({
      input_tokens: i,
      output_tokens: o,
      cache_creation_input_tokens: cw,
      cache_read_input_tokens: cr,
    });

    await call(t1, "turn-1", "claude-sonnet-4-6", day1, 500_000, 100_000, u(1000, 200, 3000, 0));
    await call(t1, "turn-2", "claude-sonnet-4-6", day1, 500_000, 60_000, u(500, 100, 0, 3000));
    await call(t1, "turn-3", "claude-haiku-4-5", day1, 200_000, "release");
    await call(t2, "turn-1", "claude-haiku-4-5", day1, 200_000, 7_000, u(2000, 400));
    await call(t2, "turn-2", "claude-haiku-4-5", day2, 200_000, 9_000, u(3000, 500));
    await call(t2, "turn-3", "claude-sonnet-4-6", day2, 300_000, "open");

    const days = await spendByAgentDay(sb.admin, { agentId: agent });
    expect(days).toEqual([
      {
        agent_id: agent, window_start: "2026-11-27", settled_micros: 9_000, estimated_micros: 0, reserved_micros: 300_000, committed_micros: 309_000,
        cap_micros: 5_000_000, reservations: 2, settlements: 1,
        input_tokens: 3000, output_tokens: 500, cache_creation_input_tokens: 0, cache_read_input_tokens: 0,
        timezone: "America/New_York", starts_at: "2026-11-27T05:00:00+00:00", ends_at: "2026-11-28T05:00:00+00:00",
        batch_calls: 0, batch_saving_micros: 0,
      },
      {
        agent_id: agent, window_start: "2026-11-26", settled_micros: 167_000, estimated_micros: 0, reserved_micros: 0, committed_micros: 167_000,
        cap_micros: 5_000_000, reservations: 4, settlements: 3,
        input_tokens: 3500, output_tokens: 700, cache_creation_input_tokens: 3000, cache_read_input_tokens: 3000,
        timezone: "America/New_York", starts_at: "2026-11-26T05:00:00+00:00", ends_at: "2026-11-27T05:00:00+00:00",
        batch_calls: 0, batch_saving_micros: 0,
      },
    ]);
    expect(await spendByAgentDay(sb.admin, { agentId: agent, from: "2026-11-26", to: "2026-11-26" })).toHaveLength(1);
    expect((await spendByAgentDay(sb.admin, { from: "2026-11-27" })).map((d) => d.agent_id)).toContain(agent);

    expect(await spendByTask(sb.admin, t1)).toEqual({
      task_id: t1, agent_id: agent, settled_micros: 160_000, estimated_micros: 0, reserved_micros: 0, calls: 2, estimated_calls: 0,
      input_tokens: 1500, output_tokens: 300, cache_creation_input_tokens: 3000, cache_read_input_tokens: 3000,
      batch_calls: 0, batch_saving_micros: 0,
    });
    expect(await spendByTask(sb.admin, t2)).toMatchObject({ settled_micros: 16_000, reserved_micros: 300_000, calls: 2 });
    expect(await spendByTask(sb.admin, "00000000-0000-4000-8000-00000000beef")).toBeNull();
    // The per-task spend agrees with tasks.cost_micros.
    const [c] = await sql<{ c: string }>(sb.databaseUrl, `select cost_micros::text as c from public.tasks where id = $1`, [t1]);
    expect(Number(c!.c)).toBe(160_000);

    expect(await spendByModel(sb.admin, { agentId: agent })).toEqual([
      {
        model: "claude-sonnet-4-6", settled_micros: 160_000, estimated_micros: 0, reserved_micros: 300_000, calls: 2,
        input_tokens: 1500, output_tokens: 300, cache_creation_input_tokens: 3000, cache_read_input_tokens: 3000,
      },
      {
        model: "claude-haiku-4-5", settled_micros: 16_000, estimated_micros: 0, reserved_micros: 0, calls: 2,
        input_tokens: 5000, output_tokens: 900, cache_creation_input_tokens: 0, cache_read_input_tokens: 0,
      },
    ]);
    // Largest settled spend first.
    expect(await spendByModel(sb.admin, { agentId: agent, from: "2026-11-27", to: "2026-11-27" })).toMatchObject([
      { model: "claude-haiku-4-5", settled_micros: 9_000, calls: 1 },
      { model: "claude-sonnet-4-6", settled_micros: 0, reserved_micros: 300_000, calls: 0 },
    ]);
    expect(await spendByModel(sb.admin, { taskId: t2 })).toMatchObject([
      { model: "claude-haiku-4-5", settled_micros: 16_000 },
      { model: "claude-sonnet-4-6", settled_micros: 0 },
    ]);
  });
});
