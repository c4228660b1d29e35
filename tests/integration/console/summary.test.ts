// The morning summary on the real database: finished, failed, waiting and the money settled since the evening.
import { afterAll, beforeAll, expect, test } from "vitest";
import { createTestSupabase, type TestSupabase } from "../../support/supabase";
import { configureConsole, sessionCookie } from "./helpers";

let sb: TestSupabase;

beforeAll(async () => {
  sb = await createTestSupabase();
  Object.assign(process.env, { SUPABASE_URL: sb.supabaseUrl, SUPABASE_SECRET_KEY: sb.secretKey, ANTHROPIC_BASE_URL: "http://127.0.0.1:9" });
  configureConsole();
});
afterAll(async () => {
  await sb?.stop();
});

test("the summary counts overnight outcomes and sums settled spend since the evening, not before", async () => {
  const { insertTask } = await import("@/lib/tasks/service");
  const { reserveBudget, settleBudget } = await import("@/lib/budget");
  const { finishTask } = await import("@/lib/tasks/lifecycle");
  const { morningSummary } = await import("@/lib/console/queries");
  const now = new Date();
  const ids: string[] = [];
  for (let i = 0; i < 4; i++) ids.push((await insertTask(sb.admin, { agent: "research", prompt: `night ${i}` }, null, null)).taskId);

  // Three calls settled tonight, one two days ago (outside the window).
  const settle = async (taskId: string, micros: number, at: Date) => {
    await reserveBudget(sb.admin, { agentId: "research", taskId, stepId: "turn-1", model: "claude-sonnet-4-6", amountMicros: 50_000, now: at });
    await settleBudget(sb.admin, { taskId, stepId: "turn-1", actualMicros: micros, now: at });
  };
  await settle(ids[0]!, 1_000, new Date(now.getTime() - 60 * 60_000));
  await settle(ids[1]!, 2_500, new Date(now.getTime() - 5 * 60 * 60_000));
  await settle(ids[2]!, 4_000, new Date(now.getTime() - 10 * 60_000));
  await settle(ids[3]!, 99_000, new Date(now.getTime() - 48 * 60 * 60_000));
  await finishTask(sb.admin, ids[0]!, { status: "completed", result: { text: "ok" } });
  await finishTask(sb.admin, ids[1]!, { status: "failed", error: { message: "boom" } });

  const { session } = sessionCookie();
  const summary = await morningSummary(session, sb.admin, now);
  expect(summary).toMatchObject({ completed: 1, failed: 1, waitingBudget: 0, waitingApproval: 0 });
  expect(summary.spentMicros).toBe(7_500);
});
