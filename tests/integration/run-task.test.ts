// run-task under @inngest/test, on the real database and the offline Claude double (through the real SDK).
// @inngest/test does not model retries (an erroring step halts the run), so a retry is exercised as a new
// execution of the same event; that memoized steps are not re-run on a retry is the engine's part and is
// tested through the local engine.
import { InngestTestEngine } from "@inngest/test";
import { NonRetriableError } from "inngest";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { scenarioMarker, type ClaudeDouble } from "../../local/claude/server";
import { startAppFixture, type AppFixture } from "../support/app-fixture";
import type { TestSupabase } from "../support/supabase";

let fx: AppFixture;
let sb: TestSupabase;
let double: ClaudeDouble;
let runTask: typeof import("@/inngest/functions/run-task").runTask;
let insertTask: typeof import("@/lib/tasks/service").insertTask;
let apiKeyId: string;

beforeAll(async () => {
  // @inngest/test runs the function in-process: the engine serves no function here (it only receives what is sent).
  fx = await startAppFixture({ serve: () => ({ functions: [] }) });
  ({ sb, double } = fx);
  ({ runTask } = await import("@/inngest/functions/run-task"));
  ({ insertTask } = await import("@/lib/tasks/service"));
  const { createApiKey } = await import("@/lib/api-keys");
  apiKeyId = (await createApiKey(sb.admin, "run-task tests")).id;
});

afterAll(async () => {
  await fx?.stop();
});

async function newTask(scenario: string, agent = "research"): Promise<string> {
  const t = await insertTask(sb.admin, { agent, prompt: `${scenarioMarker(scenario)} Summarize durable execution.` }, apiKeyId, null);
  return t.taskId;
}

function engineFor(taskId: string, agent = "research", sleeps: string[] = []) {
  return new InngestTestEngine({
    function: runTask,
    events: [{ name: "task/run.requested", id: `task-run-${taskId}`, data: { task_id: taskId, agent } }],
    // @inngest/test cannot send events; the engine tests cover task/run.finished for real. Sleeps named here pass at
    // once (an unmocked sleep never resolves under @inngest/test).
    steps: [{ id: "emit-finished", handler: () => ({ ids: ["test"] }) }, ...sleeps.map((id) => ({ id, handler: () => undefined }))],
  });
}

async function taskRow(taskId: string) {
  const { data, error } = await sb.admin.from("tasks").select("*").eq("id", taskId).single();
  if (error) throw error;
  return data;
}

describe("run-task", () => {
  test("runs each model turn once, stores the result and marks the task completed", async () => {
    const scenario = "two-turns";
    double.script(scenario, [{ text: "Durable execution keeps ", stop_reason: "max_tokens" }, { text: "every step." }]);
    const taskId = await newTask(scenario);

    const { result } = await engineFor(taskId).execute();

    expect(result).toEqual({ task_id: taskId, status: "completed", turns: 2 });
    const calls = double.calls({ scenario, kind: "messages" });
    expect(calls).toHaveLength(2);
    expect(calls.map((c) => c.turn)).toEqual([0, 1]);
    const row = await taskRow(taskId);
    expect(row.status).toBe("completed");
    expect(row.result).toEqual({ text: "Durable execution keeps every step.", turns: 2 });
    // Progress counts model turns against the agent's turn limit (research: max_turns 10), also once completed.
    expect(row.progress_done).toBe(2);
    expect(row.progress_total).toBe(10);
    expect(Number(row.cost_micros)).toBeGreaterThan(0);
    expect(row.started_at).not.toBeNull();
    expect(row.finished_at).not.toBeNull();
    const { data: steps } = await sb.admin.from("task_steps").select("step_id,status,cost_micros").eq("task_id", taskId).order("id");
    expect(steps!.map((s) => [s.step_id, s.status])).toEqual([
      ["turn-1", "completed"],
      ["turn-2", "completed"],
    ]);
    expect(steps!.reduce((sum, s) => sum + Number(s.cost_micros), 0)).toBe(Number(row.cost_micros));
  });

  test("an outage-class model error (529) spends no attempt: the turn backs off durably, and its retry succeeds", async () => {
    const scenario = "error-then-ok";
    double.script(scenario, [{ error: { status: 529 } }, { text: "Recovered." }]);
    const taskId = await newTask(scenario);

    // One execution, no step error: turn-1 hits the 529 and answers a wait; the run sleeps (dependency-sleep-1-1) and
    // turn-1-retry-1 runs the turn again, which succeeds.
    const { result, error } = await engineFor(taskId, "research", ["dependency-sleep-1-1"]).execute();
    expect(error).toBeUndefined();
    expect(result).toEqual({ task_id: taskId, status: "completed", turns: 1 });
    expect(double.calls({ scenario, kind: "messages" }).map((c) => c.status)).toEqual([529, 200]);
    const row = await taskRow(taskId);
    expect(row.status).toBe("completed");
    expect(row.progress_done).toBe(1);
    const { data: steps } = await sb.admin.from("task_steps").select("step_id,status").eq("task_id", taskId);
    expect(steps).toEqual([{ step_id: "turn-1", status: "completed" }]);
  });

  test("send_email while Resend's breaker is open: the tool call waits (no attempt, no failure), then the probe sends it once", async () => {
    const { startCaptureServer } = await import("../support/capture-server");
    const resend = await startCaptureServer();
    Object.assign(process.env, { RESEND_API_KEY: "re_test_key", RESEND_BASE_URL: resend.url });
    try {
      const openedAt = new Date();
      const probeAt = new Date(openedAt.getTime() + 60_000);
      const { error: openError } = await sb.admin.from("breakers").upsert({
        dependency: "resend", state: "open", consecutive_failures: 5, cooldown_seconds: 60, opened_at: openedAt.toISOString(),
        next_probe_at: probeAt.toISOString(), state_since: openedAt.toISOString(), last_error: "Resend is unavailable (503)",
      });
      expect(openError).toBeNull();
      const scenario = "email-breaker";
      double.script(scenario, [
        { tool_use: { name: "send_email", input: { to: ["ada@example.com"], subject: "Tonight's note", text: "A short, honest note." } } },
        { text: "Sent." },
      ]);
      const taskId = await newTask(scenario, "outreach");

      // One execution: the tool step answers the wait, the run sleeps to the probe time (mocked), the retry probes.
      const { result, error, ctx } = await engineFor(taskId, "outreach", ["tool-1-send_email-sleep-1"]).execute();
      expect(error).toBeUndefined();
      expect(result).toEqual({ task_id: taskId, status: "completed", turns: 2 });
      // The first try was refused by the open breaker (not sent, not failed): the run slept until the probe time, and
      // the retry after the sleep sent it.
      const sleeps = (ctx.step.sleepUntil as unknown as { mock: { calls: [string, string][] } }).mock.calls;
      expect(sleeps.map(([id, at]) => [id, Date.parse(at)])).toEqual([["tool-1-send_email-sleep-1", probeAt.getTime()]]);
      const runs = (ctx.step.run as unknown as { mock: { calls: [string][] } }).mock.calls.map(([id]) => id);
      expect(runs).toEqual(expect.arrayContaining(["tool-1-send_email", "tool-1-send_email-wait-1", "tool-1-send_email-retry-1"]));
      expect(resend.requests.filter((r) => r.method === "POST" && r.url === "/emails")).toHaveLength(1);
      const { data: b } = await sb.admin.from("breakers").select("state").eq("dependency", "resend").single();
      expect(b!.state).toBe("closed");
      const { data: steps } = await sb.admin.from("task_steps").select("step_id,status").eq("task_id", taskId).order("id");
      expect(steps!.map((x) => [x.step_id, x.status])).toEqual([["turn-1", "completed"], ["tool-1-send_email", "completed"], ["turn-2", "completed"]]);
    } finally {
      delete process.env["RESEND_API_KEY"];
      delete process.env["RESEND_BASE_URL"];
      await resend.stop();
    }
  });

  test("an invalid request is a permanent failure with a readable error", async () => {
    const scenario = "bad-request";
    double.script(scenario, [{ error: { status: 400, message: "max_tokens: too large for this model" } }]);
    const taskId = await newTask(scenario);

    const { error } = await engineFor(taskId).execute();

    expect((error as Error).name).toBe(NonRetriableError.name);
    expect((error as Error).message).toBe("Claude API 400: max_tokens: too large for this model");
    expect(double.calls({ scenario, kind: "messages" })).toHaveLength(1);
    const { data: steps } = await sb.admin.from("task_steps").select("step_id,status,detail").eq("task_id", taskId);
    expect(steps).toEqual([
      { step_id: "turn-1", status: "failed", detail: { model: "claude-sonnet-4-6", error: "Claude API 400: max_tokens: too large for this model" } },
    ]);
  });

  test("max_turns stops the task with its partial result and the reason", async () => {
    const scenario = "never-ends";
    await sb.admin.from("agents").update({ max_turns: 3 }).eq("id", "outreach");
    double.script(scenario, [{ text: "a", stop_reason: "max_tokens", repeat: 5 }]);
    const taskId = await newTask(scenario, "outreach");

    const { result } = await engineFor(taskId, "outreach").execute();

    expect(result).toEqual({ task_id: taskId, status: "stopped", reason: "max_turns (3) reached", turns: 3 });
    expect(double.calls({ scenario, kind: "messages" })).toHaveLength(3);
    const row = await taskRow(taskId);
    expect(row.status).toBe("stopped");
    expect(row.status_reason).toBe("max_turns (3) reached");
    expect(row.result).toEqual({ text: "aaa", turns: 3, partial: true });
  });

  test("a duplicate run of a finished task changes nothing and calls no model", async () => {
    const scenario = "finished-already";
    const taskId = await newTask(scenario);
    await engineFor(taskId).execute();
    const before = await taskRow(taskId);
    const callsBefore = double.calls({ scenario, kind: "messages" }).length;

    const { result } = await engineFor(taskId).execute();

    expect(result).toEqual({ task_id: taskId, skipped: "task already finished" });
    expect(double.calls({ scenario, kind: "messages" }).length).toBe(callsBefore);
    expect((await taskRow(taskId)).updated_at).toBe(before.updated_at);
  });
});
