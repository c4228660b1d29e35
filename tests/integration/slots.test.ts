// Event-driven slots through the app's real run-task function, the SDK and the local engine on a manual clock. In the
// first test the clock never moves: a waiting task can only be woken by a slot's hand-over (the 10-minute fallback
// never fires). With one slot, the waiting tasks run in the order priority, then age. The second moves it only to end
// a wait for the model's breaker, and reads the fallback the next slot wait was registered with.
import { afterAll, beforeAll, expect, test } from "vitest";
import { scenarioMarker, type ClaudeDouble } from "../../local/claude/server";
import { ManualClock } from "../../local/engine";
import { startAppFixture, type AppFixture } from "../support/app-fixture";
import { quietTick, until, type TestEngine } from "../support/engine-harness";
import type { TestSupabase } from "../support/supabase";

let fx: AppFixture;
let sb: TestSupabase;
let double: ClaudeDouble;
let te: TestEngine;

beforeAll(async () => {
  // The app's rows and the breaker are stamped with real time; the engine's clock starts there.
  fx = await startAppFixture({ clock: new ManualClock(Date.now()) });
  ({ sb, double, te } = fx);
  const { error } = await sb.admin.from("agents").insert([
    { id: "single", display_name: "Single", model: "claude-haiku-4-5", system_prompt: "One at a time.", daily_budget_micros: 10_000_000, concurrency: 1 },
    // Its own model, so its breaker touches no other test.
    { id: "after_outage", display_name: "After outage", model: "claude-sonnet-4-6", system_prompt: "One at a time.", daily_budget_micros: 10_000_000, concurrency: 1 },
  ]);
  if (error) throw error;
});

afterAll(() => fx?.stop());

test("tasks waiting for the only slot are woken by its release, in priority-then-age order, without polling", async () => {
  const { submitTask } = await import("@/lib/tasks/submit");
  const { acquireSlot, releaseSlot } = await import("@/lib/agents/slots");
  // A holder that is not running: the slot is taken until the test gives it back.
  const holder = await submitTask(sb.admin, { agent: "single", prompt: "hold" }, null, null, { relay: "none" });
  expect((await acquireSlot(sb.admin, { agentId: "single", taskId: holder.taskId, leaseSeconds: 3600 })).ok).toBe(true);
  await sb.admin.from("outbox").update({ sent_at: new Date().toISOString() }).eq("event_id", `task-run-${holder.taskId}`);

  const specs = [
    { name: "a", priority: 0 },
    { name: "b", priority: 5 },
    { name: "c", priority: 0 },
    { name: "d", priority: 5 },
  ];
  const ids: Record<string, string> = {};
  for (const s of specs) {
    double.script(`slots-${s.name}`, [{ text: `done ${s.name}` }]);
    ids[s.name] = (
      await submitTask(sb.admin, { agent: "single", prompt: `${scenarioMarker(`slots-${s.name}`)} ${s.name}`, priority: s.priority }, null, null)
    ).taskId;
  }
  // All four are in line, and their runs wait (for the event, not on a timer).
  await until(async () => (await sb.admin.from("agent_slot_waiters").select("task_id", { count: "exact", head: true }).eq("agent_id", "single")).count === 4, {
    message: "the tasks never lined up",
    timeoutMs: 30_000,
  });

  expect(await releaseSlot(sb.admin, holder.taskId)).toBe(true);
  await until(
    async () => {
      const { data } = await sb.admin.from("tasks").select("status").in("id", Object.values(ids));
      return data!.every((t) => t.status === "completed");
    },
    { message: "the waiting tasks did not all complete", timeoutMs: 60_000 },
  );
  const { data } = await sb.admin.from("tasks").select("id,started_at,finished_at").in("id", Object.values(ids)).order("finished_at");
  const byId = Object.fromEntries(Object.entries(ids).map(([k, v]) => [v, k]));
  expect(data!.map((t) => byId[t.id])).toEqual(["b", "d", "a", "c"]);
  // One at a time: each started its answered turn after the previous one finished.
  const { data: turns } = await sb.admin
    .from("task_steps")
    .select("task_id,started_at,finished_at")
    .in("task_id", Object.values(ids))
    .eq("status", "completed")
    .order("started_at");
  for (let i = 1; i < turns!.length; i++) expect(Date.parse(turns![i]!.started_at)).toBeGreaterThanOrEqual(Date.parse(turns![i - 1]!.finished_at!));
});

test("the first slot wait of a turn falls back after 10 minutes, even after the turn waited for other things", async () => {
  const { submitTask } = await import("@/lib/tasks/submit");
  const { acquireSlot, releaseSlot } = await import("@/lib/agents/slots");
  const { engine } = te;
  const dep = "claude:claude-sonnet-4-6";
  // The model's breaker is open: the turn takes the slot, meets the breaker, gives the slot back and sleeps until the
  // probe (wait 1 of the turn, not a slot wait).
  const probeAt = new Date(Date.now() + 5 * 60_000).toISOString();
  const opened = await sb.admin.from("breakers").insert({
    dependency: dep,
    state: "open",
    consecutive_failures: 5,
    cooldown_seconds: 300,
    opened_at: new Date().toISOString(),
    next_probe_at: probeAt,
    last_error: "overloaded (test)",
  });
  expect(opened.error).toBeNull();
  double.script("after-outage", [{ text: "done after the outage" }]);
  const { taskId } = await submitTask(sb.admin, { agent: "after_outage", prompt: `${scenarioMarker("after-outage")} Go.` }, null, null);
  const runOf = async () => {
    for (const r of await engine.listRuns({ function_id: "nightshift-run-task", limit: 1000 })) {
      const d = await engine.getRun(r.run_id);
      if ((d?.event as { data?: { task_id?: string } })?.data?.task_id === taskId) return d;
    }
    return undefined;
  };
  const entry = async (type: string, name: string) => (await runOf())?.history.find((h) => h.type === type && h.step_name === name);
  await until(() => entry("step.sleeping", "dependency-sleep-1-1"), { message: "the turn never waited for the breaker", timeoutMs: 60_000 });

  // Meanwhile another task takes the only slot; at the probe time the retry finds it taken and waits in line (wait 2).
  const holder = await submitTask(sb.admin, { agent: "after_outage", prompt: "hold" }, null, null, { relay: "none" });
  await sb.admin.from("outbox").update({ sent_at: new Date().toISOString() }).eq("event_id", `task-run-${holder.taskId}`);
  expect((await acquireSlot(sb.admin, { agentId: "after_outage", taskId: holder.taskId, leaseSeconds: 3600 })).ok).toBe(true);
  const waiting = await until(() => entry("step.waiting", "slot-wait-1-2"), {
    message: "the retry never waited for a slot",
    timeoutMs: 60_000,
    tick: quietTick(engine, fx.clock, 60_000),
  });
  // The turn's first slot wait: the 10-minute fallback, not the 20 minutes of a second wait of the turn.
  const timeoutAt = (waiting.detail as { timeout_at: string }).timeout_at;
  expect(Date.parse(timeoutAt) - Date.parse(waiting.at)).toBe(10 * 60_000);

  // The hand-over still wakes it: it probes the model, closes the breaker and completes.
  expect(await releaseSlot(sb.admin, holder.taskId)).toBe(true);
  await until(async () => (await sb.admin.from("tasks").select("status").eq("id", taskId).single()).data?.status === "completed", {
    message: "the task never completed after the hand-over",
    timeoutMs: 60_000,
  });
  expect((await sb.admin.from("breakers").select("state").eq("dependency", dep).single()).data?.state).toBe("closed");
});
