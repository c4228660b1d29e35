// Event-driven slots through the app's real run-task function, the SDK and the local engine, whose manual clock
// never moves here: a waiting task can only be woken by a slot's hand-over (the 10-minute fallback never fires).
// With one slot, the waiting tasks run in the order priority, then age.
import { afterAll, beforeAll, expect, test } from "vitest";
import { scenarioMarker, type ClaudeDouble } from "../../local/claude/server";
import { startAppFixture, type AppFixture } from "../support/app-fixture";
import { until } from "../support/engine-harness";
import type { TestSupabase } from "../support/supabase";

let fx: AppFixture;
let sb: TestSupabase;
let double: ClaudeDouble;

beforeAll(async () => {
  fx = await startAppFixture();
  ({ sb, double } = fx);
  const { error } = await sb.admin.from("agents").insert({
    id: "single",
    display_name: "Single",
    model: "claude-haiku-4-5",
    system_prompt: "One at a time.",
    daily_budget_micros: 10_000_000,
    concurrency: 1,
  });
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
