// The app event `agent/task.requested`, sent by "another app" with the real Inngest SDK (its own client id) to the
// local engine, handled by the app's real functions over HTTP: it records a task and runs it, a repeat with the
// same idempotency_key makes no second task, and a bad payload fails the run naming the field and tells the operator.
import { Inngest } from "inngest";
import { afterAll, beforeAll, expect, test } from "vitest";
import { scenarioMarker, type ClaudeDouble } from "../../../local/claude/server";
import { startAppFixture, type AppFixture } from "../../support/app-fixture";
import { runReaches, until, type TestEngine } from "../../support/engine-harness";
import type { TestSupabase } from "../../support/supabase";

const FN = "nightshift-agent-task-requested";
let fx: AppFixture;
let sb: TestSupabase;
let double: ClaudeDouble;
let te: TestEngine;
let otherApp: Inngest;

beforeAll(async () => {
  fx = await startAppFixture();
  ({ sb, double, te } = fx);
  // What another app does: its own client, sending the public event by name.
  otherApp = new Inngest({ id: "crm-app", isDev: true, baseUrl: te.engine.url });
});

afterAll(() => fx?.stop());

async function runsOf(eventId: string) {
  return te.engine.listRuns({ event_id: eventId, function_id: FN });
}

test("an app event records a task and runs it; a repeat with the same idempotency_key makes no second task", async () => {
  double.script("app-event", [{ text: "Researched from an app event." }]);
  const data = { agent: "research", prompt: `${scenarioMarker("app-event")} Look into competitor pricing.`, idempotency_key: "crm-lead-42" };
  const { ids } = await otherApp.send({ name: "agent/task.requested", data });
  const again = await otherApp.send({ name: "agent/task.requested", data });
  for (const id of [...ids, ...again.ids]) {
    const run = await until(async () => (await runsOf(id))[0], { message: `no run for ${id}`, timeoutMs: 90_000 });
    await runReaches(te.engine, run.run_id, "completed");
  }
  const { data: tasks } = await sb.admin.from("tasks").select("id,status,agent_id").eq("idempotency_key", "event:crm-lead-42");
  expect(tasks).toHaveLength(1);
  const done = await until(async () => {
    const { data: t } = await sb.admin.from("tasks").select("status,result").eq("id", tasks![0]!.id).single();
    return t?.status === "completed" ? t : undefined;
  }, { message: "the task did not complete", timeoutMs: 90_000 });
  expect(done.result).toMatchObject({ text: "Researched from an app event." });
});

test("a bad payload fails the run naming the field, and the operator is told", async () => {
  const { ids } = await otherApp.send({ name: "agent/task.requested", data: { agent: "research", prompt: "", mode: "sometime" } });
  const run = await until(async () => (await runsOf(ids[0]!))[0], { message: "no run for the bad event", timeoutMs: 90_000 });
  const failed = await runReaches(te.engine, run.run_id, "failed");
  const message = JSON.stringify(failed.error);
  expect(message).toContain("prompt: prompt must not be empty");
  expect(message).toContain("mode:");
  const { data: notices } = await sb.admin.from("notifications").select("kind,body").eq("kind", "app_event_refused");
  expect(notices).toHaveLength(1);
  expect(notices![0]!.body).toContain("prompt");
});

test("an unknown agent is a named, final failure too", async () => {
  const { ids } = await otherApp.send({ name: "agent/task.requested", data: { agent: "nobody", prompt: "hi" } });
  const run = await until(async () => (await runsOf(ids[0]!))[0], { message: "no run", timeoutMs: 90_000 });
  const failed = await runReaches(te.engine, run.run_id, "failed");
  expect(JSON.stringify(failed.error)).toContain("unknown or disabled agent 'nobody'");
});
