// Overnight mode chosen by policy (issue 13), through run-task on the real database and the offline double: a task
// that names no mode takes its agent's default mode; mode "auto" sends a call through the Message Batches API while
// the task's deadline leaves room for a batch (NIGHTSHIFT_BATCH_ROOM_S, 1 h by default) and directly otherwise.
// run-task runs under @inngest/test: a batch turn is seen at its submit step (its polls are the engine's part,
// tested in batch-mode.test.ts).
import { InngestTestEngine } from "@inngest/test";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { scenarioMarker, startClaudeDouble, type ClaudeDouble } from "../../local/claude/server";
import { createTestSupabase, type TestSupabase } from "./../support/supabase";
import { callWay } from "@/lib/agents/call-mode";

const AGENT = "night_writer";
let sb: TestSupabase;
let double: ClaudeDouble;
let runTask: typeof import("@/inngest/functions/run-task").runTask;
let submitTask: typeof import("@/lib/tasks/submit").submitTask;

beforeAll(async () => {
  sb = await createTestSupabase();
  double = await startClaudeDouble({ batchDelayMs: 60_000 });
  Object.assign(process.env, {
    SUPABASE_URL: sb.supabaseUrl,
    SUPABASE_SECRET_KEY: sb.secretKey,
    ANTHROPIC_BASE_URL: double.url,
    INNGEST_DEV: "http://127.0.0.1:9", // the relay's sends fail harmlessly: @inngest/test runs the function in-process
  });
  ({ runTask } = await import("@/inngest/functions/run-task"));
  ({ submitTask } = await import("@/lib/tasks/submit"));
  const ins = await sb.admin.from("agents").insert({
    id: AGENT,
    display_name: "Night writer",
    model: "claude-sonnet-4-6",
    system_prompt: "You write short notes overnight.",
    daily_budget_micros: 50_000_000,
    concurrency: 10,
  });
  expect(ins.error).toBeNull();
  const { updateAgentSettings } = await import("@/lib/agents/settings");
  const r = await updateAgentSettings(sb.admin, AGENT, { default_mode: "auto" }, "test");
  expect(r).toMatchObject({ outcome: "updated", agent: { default_mode: "auto" } });
});

afterAll(async () => {
  await double?.stop();
  await sb?.stop();
});

const engineFor = (taskId: string) =>
  new InngestTestEngine({
    function: runTask,
    events: [{ name: "task/run.requested", id: `task-run-${taskId}`, data: { task_id: taskId, agent: AGENT } }],
    steps: [{ id: "emit-finished", handler: () => ({ ids: ["test"] }) }],
  });

async function submit(scenario: string, extra: { mode?: "now" | "batch" | "auto"; deadline?: string }) {
  double.script(scenario, [{ text: `Note for ${scenario}.` }]);
  const { taskId } = await submitTask(sb.admin, { agent: AGENT, prompt: `${scenarioMarker(scenario)} Write the note.`, ...extra }, null, null, { relay: "none" });
  return taskId;
}

const batchRequests = (scenario: string) => double.calls((c) => c.kind === "batch_request" && c.scenario === scenario).length;
const directCalls = (scenario: string) => double.calls({ scenario, kind: "messages" }).length;
const inHours = (h: number) => new Date(Date.now() + h * 3_600_000).toISOString();

describe("mode auto", () => {
  test("no mode takes the agent's default (auto); a deadline 10 h away leaves room: the call goes through a batch", async () => {
    const taskId = await submit("auto-far", { deadline: inHours(10) });
    const { data: row } = await sb.admin.from("tasks").select("mode,deadline").eq("id", taskId).single();
    expect(row!.mode).toBe("auto");
    expect(Date.parse(row!.deadline!)).toBeGreaterThan(Date.now() + 9 * 3_600_000);
    const { result } = await engineFor(taskId).executeStep("turn-1-submit");
    expect(result).toMatchObject({ kind: "submitted", turn_id: "turn-1" });
    expect(batchRequests("auto-far")).toBe(1);
    expect(directCalls("auto-far")).toBe(0);
  });

  test("a deadline 10 minutes away leaves no room for a batch: the call goes directly", async () => {
    const taskId = await submit("auto-near", { deadline: new Date(Date.now() + 10 * 60_000).toISOString() });
    const { result } = await engineFor(taskId).execute();
    expect(result).toMatchObject({ task_id: taskId, status: "completed" });
    expect(directCalls("auto-near")).toBe(1);
    expect(batchRequests("auto-near")).toBe(0);
  });

  test("a task's own mode wins over the agent's default; auto without a deadline may use a batch", async () => {
    const now = await submit("explicit-now", { mode: "now", deadline: inHours(10) });
    expect((await engineFor(now).execute()).result).toMatchObject({ status: "completed" });
    expect([directCalls("explicit-now"), batchRequests("explicit-now")]).toEqual([1, 0]);

    const open = await submit("auto-open", { mode: "auto" });
    expect((await engineFor(open).executeStep("turn-1-submit")).result).toMatchObject({ kind: "submitted" });
    expect(batchRequests("auto-open")).toBe(1);
  });

  test("the rule, per call: batch while deadline − now ≥ the room", () => {
    const t0 = Date.parse("2026-11-29T23:00:00Z");
    const deadline = "2026-11-30T07:00:00Z";
    expect(callWay({ mode: "auto", deadline }, t0, 3600)).toBe("batch");
    expect(callWay({ mode: "auto", deadline }, Date.parse("2026-11-30T06:00:00Z"), 3600)).toBe("batch");
    expect(callWay({ mode: "auto", deadline }, Date.parse("2026-11-30T06:00:01Z"), 3600)).toBe("direct");
    expect(callWay({ mode: "auto", deadline }, t0, 86_400)).toBe("direct");
    expect(callWay({ mode: "auto", deadline: null }, t0, 3600)).toBe("batch");
    expect(callWay({ mode: "now", deadline: null }, t0, 3600)).toBe("direct");
    expect(callWay({ mode: "batch", deadline }, Date.parse("2026-11-30T08:00:00Z"), 3600)).toBe("batch");
  });
});
