// A crashed run that the engine gives up on lands in the dead-letter queue exactly once. The app's real functions run
// on the local engine (manual clock) against the real database and the offline double; after the task's first turn the
// app "keeps dying": every call the engine makes to run-task has its connection dropped before the app answers (as
// when the process is killed mid-request, again and again). The engine retries with backoff, gives up after the run's
// attempts and fails the run; run-task's onFailure files the dead letter. Then the failure is delivered a second time
// (the engine's inngest/function.failed event sent again): the entry, the notice and the task stay as they were.
import type { IncomingMessage, ServerResponse } from "node:http";
import { afterAll, beforeAll, expect, test } from "vitest";
import { scenarioMarker, type ClaudeDouble } from "../../../local/claude/server";
import { ManualClock } from "../../../local/engine";
import { startAppFixture, type AppFixture } from "../../support/app-fixture";
import { quietTick, runReaches, until, type TestEngine } from "../../support/engine-harness";
import type { TestSupabase } from "../../support/supabase";

const RUN_TASK = "nightshift-run-task";
const ON_FAILURE = "nightshift-run-task-failure";

let fx: AppFixture;
let sb: TestSupabase;
let double: ClaudeDouble;
let te: TestEngine;
let clock: ManualClock;
let submitTask: typeof import("@/lib/tasks/submit").submitTask;
/** While set, every call of run-task itself (not its failure handler) dies before the app answers. */
let dying = false;
let killed = 0;

beforeAll(async () => {
  clock = new ManualClock(Date.now());
  fx = await startAppFixture({
    clock,
    double: { onEngineClock: true },
    wrap: (handler) => (req: IncomingMessage, res: ServerResponse) => {
      const fnId = new URL(req.url ?? "/", "http://app").searchParams.get("fnId");
      if (dying && fnId === RUN_TASK) {
        killed += 1;
        req.socket.destroy(); // the process died with the request: no answer, a reset connection
        return;
      }
      return handler(req, res);
    },
  });
  ({ sb, double, te } = fx);
  ({ submitTask } = await import("@/lib/tasks/submit"));
}, 60_000);

afterAll(() => fx?.stop());

async function failureRuns(): Promise<{ run_id: string; status: string }[]> {
  return (await te.engine.listRuns({ function_id: ON_FAILURE })).map((r) => ({ run_id: r.run_id, status: r.status }));
}

test("a run the engine gives up on after the app kept dying is one dead letter, with its cost; a repeated failure files nothing more", async () => {
  const scenario = "crashed-run";
  // Turn 1 is answered (and paid); turn 2 is rate limited, so the run sleeps durably — and the app dies from then on.
  double.script(scenario, [{ text: "one ", stop_reason: "max_tokens" }, { error: { status: 429, retry_after_s: 30 } }, { text: "never." }]);
  const { taskId } = await submitTask(sb.admin, { agent: "research", prompt: `${scenarioMarker(scenario)} Count to three.` }, null, null);
  await until(async () => {
    const { data } = await sb.admin.from("tasks").select("status").eq("id", taskId).single();
    return data?.status === "waiting_rate_limit";
  }, { timeoutMs: 60_000, message: "the task never reached its rate-limited sleep" });
  dying = true;

  // The engine's retries back off on its manual clock, moved only while no call is under way.
  const [run] = await until(async () => {
    const runs = await te.engine.listRuns({ function_id: RUN_TASK });
    return runs.length ? runs : undefined;
  });
  const failedRun = await runReaches(te.engine, run!.run_id, ["failed", "completed"], { timeoutMs: 60_000, tick: quietTick(te.engine, clock, 60_000) });
  expect(failedRun.status).toBe("failed");
  expect(killed).toBeGreaterThanOrEqual(5); // the run's five attempts, each one a dropped connection

  // The failure handler (its calls go through) fails the task and files its one dead letter.
  const [handler] = await until(async () => {
    const runs = await failureRuns();
    return runs.length && runs.every((r) => r.status === "completed") ? runs : undefined;
  }, { timeoutMs: 60_000, tick: quietTick(te.engine, clock, 1_000), message: "the failure handler did not complete" });
  const { data: task } = await sb.admin.from("tasks").select("status,status_reason,cost_micros").eq("id", taskId).single();
  expect(task!.status).toBe("failed");
  expect(task!.status_reason).toMatch(/^The app running the task stopped answering the engine/);
  expect(Number(task!.cost_micros)).toBeGreaterThan(0); // turn 1 was paid

  const entries = async () => (await sb.admin.from("dead_letters").select("id,failure_kind,summary,cost_micros,failed_step,error,status").eq("task_id", taskId)).data!;
  const [dl, ...more] = await entries();
  expect(more).toEqual([]);
  expect(dl).toMatchObject({ failure_kind: "our_bug", status: "pending", cost_micros: task!.cost_micros });
  expect(dl!.summary).toMatch(/stopped answering the engine/);
  expect(JSON.stringify(dl!.error)).toMatch(/ECONNRESET|socket hang up/);
  // Nothing is left held: no open reservation, no slot.
  const { data: open } = await sb.admin.from("budget_reservations").select("status").eq("task_id", taskId).eq("status", "reserved");
  expect(open).toEqual([]);
  const { data: slots } = await sb.admin.from("agent_slots").select("task_id").eq("task_id", taskId);
  expect(slots).toEqual([]);

  // The same failure delivered again (a duplicate event, or a second handler run after a crash of its own).
  const original = await te.engine.getRun(handler!.run_id);
  const event = original!.event as { name: string; data: unknown };
  const sent = await fetch(`${te.engine.url}/e/local`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify([{ name: event.name, data: event.data }]) });
  expect(sent.ok).toBe(true);
  await until(async () => {
    const runs = await failureRuns();
    return runs.length === 2 && runs.every((r) => r.status === "completed");
  }, { timeoutMs: 60_000, tick: quietTick(te.engine, clock, 1_000), message: "the second failure handler did not complete" });
  expect(await entries()).toEqual([dl]);
  const { data: after } = await sb.admin.from("tasks").select("status,status_reason").eq("id", taskId).single();
  expect(after).toEqual({ status: "failed", status_reason: task!.status_reason });
  const { count } = await sb.admin.from("notifications").select("id", { count: "exact", head: true }).eq("dedupe_key", `task_failed:${taskId}`);
  expect(count).toBe(1);
}, 120_000);
