// Mode "auto" and a nearing deadline (issue 13), through run-task on the local engine (manual clock), the real
// database and the offline double on the engine's clock: a call that went through a batch (the deadline left room)
// whose batch has not ended when too little time is left for a direct call (NIGHTSHIFT_DIRECT_ROOM_S, 10 min) is
// cancelled with the Batches API — `canceling`, then `ended` with results for what had already succeeded — and
//   - a request the batch had not run: nothing billed, its reservation released, the call runs directly;
//   - a request the batch had already answered: billed at the batch price, charged, and its answer used.
import { afterAll, beforeAll, expect, test } from "vitest";
import { scenarioMarker, type ClaudeDouble } from "../../local/claude/server";
import { ManualClock } from "../../local/engine";
import { startAppFixture, type AppFixture } from "../support/app-fixture";
import { quietTick, until, type TestEngine } from "../support/engine-harness";
import type { TestSupabase } from "../support/supabase";

const AGENT = "deadline_writer";
const MODEL = "claude-sonnet-4-6";
const DAY_MS = 24 * 3_600_000;

let fx: AppFixture;
let sb: TestSupabase;
let double: ClaudeDouble;
let te: TestEngine;
let clock: ManualClock;
let submitTask: typeof import("@/lib/tasks/submit").submitTask;
let costMicros: typeof import("@/lib/llm/prices").costMicros;

beforeAll(async () => {
  clock = new ManualClock(Date.now());
  // Batches that would take a whole day: only the cancel ends them before the deadline.
  fx = await startAppFixture({ clock, double: { onEngineClock: true, batchDelayMs: DAY_MS } });
  ({ sb, double, te } = fx);
  ({ submitTask } = await import("@/lib/tasks/submit"));
  ({ costMicros } = await import("@/lib/llm/prices"));
  const ins = await sb.admin.from("agents").insert({
    id: AGENT,
    display_name: "Deadline writer",
    model: MODEL,
    system_prompt: "You write short notes overnight.",
    daily_budget_micros: 50_000_000,
    concurrency: 4,
  });
  expect(ins.error).toBeNull();
}, 60_000);

afterAll(() => fx?.stop());

const ENDED = ["completed", "failed", "stopped"];

async function submit(scenario: string, deadline: string) {
  const { taskId } = await submitTask(sb.admin, { agent: AGENT, prompt: `${scenarioMarker(scenario)} Write the note.`, mode: "auto", deadline }, null, null);
  return taskId;
}

async function outcome(taskId: string) {
  const { data: task } = await sb.admin.from("tasks").select("status,result,cost_micros,batch_saving_micros").eq("id", taskId).single();
  const ledger = (await sb.admin.from("budget_reservations").select("step_id,status,actual_micros,reserved_micros").eq("task_id", taskId)).data!;
  return { task: task!, ledger };
}

test("mode auto: a batch that outlives the deadline's room is cancelled; what it ran is used and charged, the rest runs directly", async () => {
  // The app stamps a batch with its own clock (real time) and places its polls from there; the engine's clock is
  // brought to real time first so that both agree to within the seconds this test takes.
  const syncedAt = Date.now();
  clock.advance(Math.max(0, syncedAt - clock.now()));
  // A deadline two hours away: room for a batch (NIGHTSHIFT_BATCH_ROOM_S, 1 h), so the first call is batched.
  const deadline = new Date(clock.now() + 2 * 3_600_000).toISOString();
  // Not run before the cancel: the batch would take a day.
  const notRun = "deadline-not-run";
  double.script(notRun, [{ text: "Batched note (never delivered)." }, { text: "Direct note." }]);
  // Run before the cancel: processed 10 minutes after the batch was created.
  const ran = "deadline-ran";
  double.script(ran, [{ text: "Batched note.", latency_ms: 600_000, usage: { output_tokens: 300 } }, { text: "Direct note (never asked)." }]);
  const ids = [await submit(notRun, deadline), await submit(ran, deadline)];
  // Both batches created before the clock moves at all (a tick while the start events are still being relayed would
  // put the engine ahead of the app's clock). What remains between the two clocks: the real seconds until then.
  await until(() => [notRun, ran].every((sc) => double.calls((c) => c.kind === "batch_request" && c.scenario === sc).length === 1), {
    timeoutMs: 60_000,
    message: "the batches were not created",
  });
  const skewMs = Date.now() - syncedAt;
  await until(
    async () => {
      const { data } = await sb.admin.from("tasks").select("status").in("id", ids);
      return data?.every((t) => ENDED.includes(t.status));
    },
    { timeoutMs: 150_000, tick: quietTick(te.engine, clock, 60_000), message: "the tasks did not end" },
  );
  const cancels = double.calls((c) => c.kind === "batches" && c.method === "POST" && c.path.endsWith("/cancel") && c.status === 200);

  // 1. The request the batch had not run: cancelled once, within the last NIGHTSHIFT_DIRECT_ROOM_S (10 min) before
  //    the deadline (plus the clocks' skew and a minute: the test's clock moves a minute at a time), not billed, its reservation
  //    released; then one direct call, charged at full price.
  {
    const { task, ledger } = await outcome(ids[0]!);
    expect(task.status).toBe("completed");
    expect((task.result as { text: string }).text).toBe("Direct note.");
    const item = double.calls((c) => c.kind === "batch_request" && c.scenario === notRun);
    expect(item).toHaveLength(1);
    expect(item[0]).toMatchObject({ outcome: "canceled", usage: null });
    const mine = cancels.filter((c) => c.batch_id === item[0]!.batch_id);
    expect(mine).toHaveLength(1);
    expect(Date.parse(mine[0]!.at)).toBeGreaterThanOrEqual(Date.parse(deadline) - 600_000 - skewMs - 60_000);
    expect(Date.parse(mine[0]!.at)).toBeLessThan(Date.parse(deadline));
    const direct = double.calls({ scenario: notRun, kind: "messages" }).filter((c) => c.status === 200);
    expect(direct).toHaveLength(1);
    expect(ledger.map((r) => r.status).sort()).toEqual(["released", "settled"]);
    expect(Number(task.cost_micros)).toBe(costMicros(MODEL, direct[0]!.usage!));
    expect(Number(task.batch_saving_micros)).toBe(0);
  }

  // 2. The request the batch had already answered: the cancel ends the batch with that result, which is used and
  //    charged once at the batch price (half); no direct call.
  {
    const { task, ledger } = await outcome(ids[1]!);
    expect(task.status).toBe("completed");
    expect((task.result as { text: string }).text).toBe("Batched note.");
    const item = double.calls((c) => c.kind === "batch_request" && c.scenario === ran);
    expect(item).toHaveLength(1);
    expect(item[0]!.outcome).not.toBe("canceled");
    expect(cancels.filter((c) => c.batch_id === item[0]!.batch_id)).toHaveLength(1);
    expect(double.calls({ scenario: ran, kind: "messages" })).toHaveLength(0);
    const batchCost = costMicros(MODEL, item[0]!.usage!, { batch: true });
    expect(ledger.map((r) => r.status)).toEqual(["settled"]);
    expect(Number(ledger[0]!.actual_micros)).toBe(batchCost);
    expect(Number(task.cost_micros)).toBe(batchCost);
    expect(Number(task.batch_saving_micros)).toBeGreaterThan(0);
  }
}, 200_000);
