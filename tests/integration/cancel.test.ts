// Cancelling tasks, through the app's real functions served by the SDK and run by the local engine (its own clock,
// which never moves here), on the real database and the offline Claude double.
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { scenarioMarker, type ClaudeDouble } from "../../local/claude/server";
import { ManualClock } from "../../local/engine";
import { startAppFixture, type AppFixture } from "../support/app-fixture";
import { until, type TestEngine } from "../support/engine-harness";
import type { TestSupabase } from "../support/supabase";

let fx: AppFixture;
let sb: TestSupabase;
let double: ClaudeDouble;
let te: TestEngine;
let insertTask: typeof import("@/lib/tasks/service").insertTask;
let submitTask: typeof import("@/lib/tasks/submit").submitTask;

beforeAll(async () => {
  fx = await startAppFixture({ clock: new ManualClock(Date.now()) });
  ({ sb, double, te } = fx);
  ({ insertTask } = await import("@/lib/tasks/service"));
  ({ submitTask } = await import("@/lib/tasks/submit"));
});

afterAll(() => fx?.stop());

async function run(agent: string, scenario: string, prompt: string) {
  return (await submitTask(sb.admin, { agent, prompt: `${scenarioMarker(scenario)} ${prompt}` }, null, null)).taskId;
}

async function task(taskId: string) {
  const { data, error } = await sb.admin.from("tasks").select("*").eq("id", taskId).single();
  if (error) throw error;
  return data;
}

describe("cancelling a task", () => {
  test("POST /api/tasks/:id/cancel stops a waiting task's run and gives back what it held", async () => {
    const offset = 12 - new Date().getUTCHours();
    const tz = offset === 0 ? "Etc/UTC" : `Etc/GMT${offset > 0 ? "-" : "+"}${Math.abs(offset)}`;
    const ins = await sb.admin.from("agents").insert({
      id: "canceller",
      display_name: "Canceller",
      model: "claude-haiku-4-5",
      system_prompt: "You wait.",
      daily_budget_micros: 1_000_000,
      budget_timezone: tz,
    });
    expect(ins.error).toBeNull();
    const other = await insertTask(sb.admin, { agent: "canceller", prompt: "earlier" }, null, null);
    await sb.admin.rpc("reserve_budget", {
      p_agent_id: "canceller",
      p_task_id: other.taskId,
      p_step_id: "turn-1",
      p_model: "claude-haiku-4-5",
      p_amount_micros: 999_000,
    });
    const scenario = "rt-cancel";
    const taskId = await run("canceller", scenario, "Wait for tomorrow.");
    await until(async () => (await task(taskId)).status === "waiting_budget", { message: "task never waited" });

    const { createApiKey } = await import("@/lib/api-keys");
    const cancelRoute = await import("@/app/api/tasks/[id]/cancel/route");
    const key = (await createApiKey(sb.admin, "cancel")).key;
    const cancel = (id: string, auth = `Bearer ${key}`) =>
      cancelRoute.POST(
        new Request(`http://x/api/tasks/${id}/cancel`, {
          method: "POST",
          headers: { authorization: auth, "content-type": "application/json" },
          body: JSON.stringify({ reason: "not needed any more" }),
        }),
        { params: Promise.resolve({ id }) },
      );

    expect((await cancel(taskId, "Bearer nope")).status).toBe(401);
    const res = await cancel(taskId);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ task_id: taskId, status: "cancelled" });
    const t = await task(taskId);
    expect(t.status).toBe("cancelled");
    expect(t.status_reason).toBe("cancelled: not needed any more");

    // The engine stops the run (cancelOn), without waiting for the budget window.
    await until(async () => {
      const runs = await te.engine.listRuns({ function_id: "nightshift-run-task" });
      for (const r of runs) {
        const d = await te.engine.getRun(r.run_id);
        if ((d?.event as { data?: { task_id?: string } })?.data?.task_id === taskId) return d?.status === "cancelled";
      }
      return false;
    }, { message: "the run was not cancelled" });
    const { count: slots } = await sb.admin.from("agent_slots").select("task_id", { count: "exact", head: true }).eq("task_id", taskId);
    expect(slots).toBe(0);
    const { data: live } = await sb.admin.from("budget_reservations").select("status").eq("task_id", taskId).eq("status", "reserved");
    expect(live).toEqual([]);
    expect(double.calls({ scenario, kind: "messages" })).toHaveLength(0);

    const again = await cancel(taskId);
    expect(again.status).toBe(409);
    expect(((await again.json()) as { error: { code: string; details: { status: string } } }).error).toMatchObject({
      code: "already_finished",
      details: { status: "cancelled" },
    });
    expect((await cancel("00000000-0000-4000-8000-000000000000")).status).toBe(404);
  });

  test("a run that missed its cancellation stops at its next turn without calling the model", async () => {
    const scenario = "rt-missed-cancel";
    const { taskId } = await insertTask(sb.admin, { agent: "research", prompt: `${scenarioMarker(scenario)} x` }, null, null);
    await sb.admin.rpc("cancel_task", { p_task_id: taskId, p_reason: "cancelled", p_actor: "test" });
    const { runModelTurn } = await import("@/lib/agents/turn");
    const { loadAgent } = await import("@/lib/agents/catalog");
    const out = await runModelTurn(sb.admin, {
      taskId,
      turnId: "turn-1",
      agent: await loadAgent(sb.admin, "research"),
      messages: [{ role: "user", content: "x" }],
      attempt: 0,
      now: new Date(),
      serverWebSearch: false,
    });
    expect(out).toEqual({ kind: "ended" });
    expect(double.calls({ scenario })).toHaveLength(0);
  });
});
