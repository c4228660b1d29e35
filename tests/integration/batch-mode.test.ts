// Batch-mode model turns (lib/agents/batch-turn.ts) on real parts: the real database and PostgREST, the real
// Anthropic SDK against the offline double's Message Batches API, and — for the loop — a small Inngest function
// that composes submit / poll / check exactly as run-task does, served by the real SDK over HTTP and run by the
// local engine on a manual clock. The double's clock moves with the engine's, so a batch "takes" five minutes.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Inngest } from "inngest";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { scenarioMarker, type ClaudeDouble } from "../../local/claude/server";
import { ManualClock } from "../../local/engine";
import { startAppFixture, type AppFixture } from "../support/app-fixture";
import { quietLogger, runFor, runReaches, until, type TestEngine } from "../support/engine-harness";
import type { TestSupabase } from "../support/supabase";
import type { AgentConfig } from "@/lib/agents/catalog";
import type * as BatchTurn from "@/lib/agents/batch-turn";
import type { TurnArgs } from "@/lib/agents/turn";

const AGENT = "batch_writer";
const MODEL = "claude-sonnet-4-6";
const BATCH_DELAY_MS = 5 * 60_000;
/** Exact figures for price comparisons (no cache reads or writes). */
const USAGE = { input_tokens: 2_000, output_tokens: 1_000, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 };

let fx: AppFixture;
let sb: TestSupabase;
let double: ClaudeDouble;
/** The double's data directory: batches survive its restart, as under `npm run dev`. */
let doubleDir: string;
let te: TestEngine;
let clock: ManualClock;
let inngest: Inngest;
let bt: typeof BatchTurn;
let runModelTurn: typeof import("@/lib/agents/turn").runModelTurn;
let textOf: typeof import("@/lib/agents/turn").textOf;
let loadAgent: typeof import("@/lib/agents/catalog").loadAgent;
let costMicros: typeof import("@/lib/llm/prices").costMicros;
let insertTask: typeof import("@/lib/tasks/service").insertTask;
let db: typeof import("@/lib/db/server").db;
let agent: AgentConfig;
/** Submit steps that throw after their batch was created (a crash before the step's output was checkpointed). */
let crashAfterSubmit = 0;

beforeAll(async () => {
  doubleDir = await mkdtemp(join(tmpdir(), "nightshift-batch-double-"));
  fx = await startAppFixture({
    clock: new ManualClock(Date.now()),
    double: { batchDelayMs: BATCH_DELAY_MS, dataDir: doubleDir },
    // Only the loop below is served, with its own client: the app's functions (and their crons) stay out of it.
    serve: () => {
      // The agent loop of run-task in miniature: one turn, in batch mode.
      inngest = new Inngest({ id: "batch-mode-test", logger: quietLogger });
      const loop = inngest.createFunction(
        { id: "batch-turn-loop", retries: 3, triggers: [{ event: "test/batch-turn.requested" }] },
        async ({ event, step, attempt }) => {
          const taskId = (event.data as { task_id: string }).task_id;
          const prompt = (event.data as { prompt: string }).prompt;
          const args = (): TurnArgs => ({
            taskId,
            turnId: "turn-1",
            agent,
            messages: [{ role: "user", content: prompt }],
            attempt,
            now: new Date(),
            serverWebSearch: false,
          });
          const first = (await step.run("turn-1-submit", async () => {
            const out = await bt.submitBatchTurn(db(), args());
            if (crashAfterSubmit > 0) {
              crashAfterSubmit -= 1;
              throw new Error("crashed after the batch was created");
            }
            return out;
          })) as BatchTurn.BatchSubmitOutcome;
          if (first.kind !== "submitted") return { outcome: first.kind };
          const out = await bt.awaitBatchTurn(step, first, {
            check: (ticket) => bt.checkBatchTurn(db(), { ...args(), ticket }),
            resubmit: (ticket, submission) => bt.submitBatchTurn(db(), { ...args(), submission, reservationKey: ticket.reservation_key }),
            abandon: (ticket, reason) => bt.abandonBatchTurn(db(), { taskId, turnId: "turn-1", ticket, reason }),
          });
          return { text: textOf(out.content), cost_micros: out.cost_micros, batch: out.batch };
        },
      );
      return { client: inngest, functions: [loop] };
    },
  });
  ({ sb, double, te, clock } = fx);
  bt = await import("@/lib/agents/batch-turn");
  ({ runModelTurn, textOf } = await import("@/lib/agents/turn"));
  ({ loadAgent } = await import("@/lib/agents/catalog"));
  ({ costMicros } = await import("@/lib/llm/prices"));
  ({ insertTask } = await import("@/lib/tasks/service"));
  ({ db } = await import("@/lib/db/server"));

  const ins = await sb.admin.from("agents").insert({
    id: AGENT,
    display_name: "Batch writer",
    model: MODEL,
    system_prompt: "You write short notes overnight.",
    daily_budget_micros: 50_000_000,
    concurrency: 10,
  });
  expect(ins.error).toBeNull();
  agent = await loadAgent(sb.admin, AGENT);
});

afterAll(async () => {
  await fx?.stop();
  if (doubleDir) await rm(doubleDir, { recursive: true, force: true });
});

/** Moves both clocks: the engine's (sleeps, retry backoff) and the double's (batch processing). */
function tick() {
  clock.advance(60_000);
  double.clock.advance(60_000);
}

/** Like tick, but the double's clock moves only after the run has looked at its batch since the last move: on a
 * loaded machine several ticks can pass during one slow poll, and would end the batch before any poll saw it
 * pending. */
function pollPacedTick(): () => void {
  let seen = 0;
  return () => {
    clock.advance(60_000);
    const polls = double.calls((c) => c.kind === "batches" && c.method === "GET").length;
    if (polls > seen) {
      seen = polls;
      double.clock.advance(60_000);
    }
  };
}

async function newTask(scenario: string) {
  const t = await insertTask(sb.admin, { agent: AGENT, prompt: `${scenarioMarker(scenario)} Write the note.`, mode: "batch" }, null, null);
  return t.taskId;
}

async function runLoop(scenario: string, status: "completed" | "failed", onTick: () => void = tick, timeoutMs = 45_000) {
  const taskId = await newTask(scenario);
  const { ids } = await inngest.send({ name: "test/batch-turn.requested", data: { task_id: taskId, prompt: `${scenarioMarker(scenario)} Write the note.` } });
  const runId = await runFor(te.engine, ids[0]!, "batch-mode-test-batch-turn-loop");
  const run = await runReaches(te.engine, runId, [status], { timeoutMs, tick: onTick });
  return { taskId, run };
}

const turnArgs = (taskId: string, prompt: string): TurnArgs => ({
  taskId,
  turnId: "turn-1",
  agent,
  messages: [{ role: "user", content: prompt }],
  attempt: 1,
  now: new Date(),
  serverWebSearch: false,
});

async function reservations(taskId: string) {
  const { data, error } = await sb.admin.from("budget_reservations").select("step_id,status,reserved_micros,actual_micros").eq("task_id", taskId);
  if (error) throw error;
  return data.map((r) => ({ ...r, reserved_micros: Number(r.reserved_micros), actual_micros: r.actual_micros === null ? null : Number(r.actual_micros) }));
}

async function taskRow(taskId: string) {
  const { data, error } = await sb.admin.from("tasks").select("cost_micros").eq("id", taskId).single();
  if (error) throw error;
  return { cost_micros: Number(data.cost_micros) };
}

async function timeline(taskId: string) {
  const { data } = await sb.admin.from("task_steps").select("step_id,status,detail,cost_micros").eq("task_id", taskId).order("id");
  return data!;
}

const creations = (scenario: string) => double.calls((c) => c.kind === "batch_request" && c.scenario === scenario);
const checkSteps = (run: { history: { step_name: string | null }[] }) =>
  new Set(run.history.map((h) => h.step_name).filter((n): n is string => !!n && /^turn-1-check-\d+$/.test(n)));

describe("batch-mode turns through the engine", () => {
  // First, while the double's clock has not been moved: a restarted double starts from the real clock again.
  test("a batch task in flight survives a restart of the double (npm run dev restarting): answered, one batch", async () => {
    const scenario = "bm-restart";
    double.script(scenario, [{ text: "Survived a restart.", usage: USAGE }]);
    const taskId = await newTask(scenario);
    const { ids } = await inngest.send({ name: "test/batch-turn.requested", data: { task_id: taskId, prompt: `${scenarioMarker(scenario)} Write the note.` } });
    const runId = await runFor(te.engine, ids[0]!, "batch-mode-test-batch-turn-loop");
    await until(() => creations(scenario).length === 1, { message: "the batch was not created" });
    double = await fx.restartDouble();
    const run = await runReaches(te.engine, runId, "completed", { timeoutMs: 45_000, tick });
    const output = run.output as { text: string; batch: { submissions: number } };
    expect(output.text).toContain("Survived a restart.");
    expect(output.batch.submissions).toBe(1);
    expect(await reservations(taskId)).toEqual([expect.objectContaining({ step_id: "turn-1", status: "settled" })]);
  });

  test("submit, poll while in progress, answer at the batch price, settle once", async () => {
    const scenario = "bm-happy";
    double.script(scenario, [{ text: "Written in a batch.", usage: USAGE }]);
    const { taskId, run } = await runLoop(scenario, "completed", pollPacedTick());

    const output = run.output as { text: string; cost_micros: number; batch: { polls: number; submissions: number; batch_id: string } };
    expect(output.text).toContain("Written in a batch.");
    const batchCost = costMicros(MODEL, USAGE, { batch: true });
    expect(batchCost * 2).toBe(costMicros(MODEL, USAGE)); // 21,000 µ$ at list price, 10,500 in a batch
    expect(output.cost_micros).toBe(batchCost);
    // The batch stayed in progress for five minutes: the first polls found it pending.
    expect(output.batch.polls).toBeGreaterThan(1);
    expect(checkSteps(run as never).size).toBe(output.batch.polls);
    expect(output.batch.submissions).toBe(1);
    expect(creations(scenario)).toHaveLength(1);

    const ledger = await reservations(taskId);
    expect(ledger).toHaveLength(1);
    expect(ledger[0]).toMatchObject({ step_id: "turn-1", status: "settled", actual_micros: batchCost });
    // Reserved at the full-price worst case (the whole max_tokens at the output price), settled at the discount.
    expect(ledger[0]!.reserved_micros).toBeGreaterThanOrEqual(agent.max_tokens * 15);
    expect((await taskRow(taskId)).cost_micros).toBe(batchCost);

    const steps = await timeline(taskId);
    expect(steps).toHaveLength(1);
    expect(steps[0]).toMatchObject({ step_id: "turn-1", status: "completed", detail: { mode: "batch", batch_id: output.batch.batch_id, model: MODEL } });
    expect(Number(steps[0]!.cost_micros)).toBe(batchCost);
    const { data: effects } = await sb.admin.from("side_effects").select("tool,tool_use_id,status,result").eq("task_id", taskId);
    expect(effects).toEqual([
      expect.objectContaining({ tool: "message_batch", tool_use_id: "batch:turn-1", status: "completed", result: expect.objectContaining({ batch_id: output.batch.batch_id }) }),
    ]);
  });

  test("a submit step retried after its batch was created does not create a second batch", async () => {
    const scenario = "bm-retried-submit";
    double.script(scenario, [{ text: "Only one batch.", usage: USAGE }]);
    crashAfterSubmit = 1;
    const { taskId, run } = await runLoop(scenario, "completed");

    expect(crashAfterSubmit).toBe(0); // the first attempt did crash after creating the batch
    expect(creations(scenario)).toHaveLength(1);
    const submits = run.history.filter((h) => h.step_name === "turn-1-submit");
    expect(submits.length).toBeGreaterThan(1); // the engine ran the step again
    expect((run.output as { text: string }).text).toContain("Only one batch.");
    const ledger = await reservations(taskId);
    expect(ledger).toEqual([expect.objectContaining({ step_id: "turn-1", status: "settled", actual_micros: costMicros(MODEL, USAGE, { batch: true }) })]);
  });

  test("an errored result with invalid_request fails for good and releases the reservation", async () => {
    const scenario = "bm-invalid";
    double.script(scenario, [{ error: { status: 400, type: "invalid_request_error", message: "messages: bad content" } }]);
    const { taskId, run } = await runLoop(scenario, "failed");

    expect(JSON.stringify(run.error)).toContain("invalid_request_error");
    expect(creations(scenario)).toHaveLength(1); // not resubmitted
    // Failed at the first check that saw the ended batch, without retries of that step.
    const results = double.calls((c) => c.kind === "batches" && c.path.endsWith("/results"));
    const batchId = creations(scenario)[0]!.batch_id!;
    expect(results.filter((c) => c.path.includes(batchId))).toHaveLength(1);
    const ledger = await reservations(taskId);
    expect(ledger).toEqual([expect.objectContaining({ step_id: "turn-1", status: "released", actual_micros: null })]);
    expect((await taskRow(taskId)).cost_micros).toBe(0);
    expect(await timeline(taskId)).toEqual([expect.objectContaining({ step_id: "turn-1", status: "failed" })]);
  });

  test("an overloaded result is submitted again under the same reservation, then answered", async () => {
    const scenario = "bm-overloaded";
    double.script(scenario, [{ error: { status: 529, type: "overloaded_error" } }, { text: "Second batch worked.", usage: USAGE }]);
    const { taskId, run } = await runLoop(scenario, "completed");

    const output = run.output as { text: string; batch: { submissions: number } };
    expect(output.text).toContain("Second batch worked.");
    expect(output.batch.submissions).toBe(2);
    expect(creations(scenario)).toHaveLength(2);
    expect(new Set(creations(scenario).map((c) => c.custom_id)).size).toBe(2);
    expect(run.history.some((h) => h.step_name === "turn-1-submit-2")).toBe(true);
    const ledger = await reservations(taskId);
    expect(ledger).toEqual([expect.objectContaining({ step_id: "turn-1", status: "settled", actual_micros: costMicros(MODEL, USAGE, { batch: true }) })]);
    const { data: effects } = await sb.admin.from("side_effects").select("tool_use_id").eq("task_id", taskId).order("id");
    expect(effects!.map((e) => e.tool_use_id)).toEqual(["batch:turn-1", "batch:turn-1#2"]);
  });

  test("a succeeded line that is not a message (no usage): charged as an estimate, submitted again under a fresh key, answered", async () => {
    const scenario = "bm-corrupted";
    double.script(scenario, [{ text: "Broken.", corrupt_answer: true }, { text: "Second batch worked.", usage: USAGE }]);
    const { taskId, run } = await runLoop(scenario, "completed");

    const output = run.output as { text: string; batch: { submissions: number } };
    expect(output.text).toContain("Second batch worked.");
    expect(output.batch.submissions).toBe(2);
    expect(creations(scenario)).toHaveLength(2);
    // The billed, unreadable call is charged as an estimate (never given back); the answer settles under a new key.
    const { data, error } = await sb.admin.from("budget_reservations").select("step_id,status,estimated,actual_micros").eq("task_id", taskId).order("reserved_at");
    expect(error).toBeNull();
    expect(data).toHaveLength(2);
    expect(data![0]).toMatchObject({ step_id: "turn-1", status: "settled", estimated: true });
    expect(Number(data![0]!.actual_micros)).toBeGreaterThan(0);
    expect(data![1]).toMatchObject({ status: "settled", estimated: false });
    expect(Number(data![1]!.actual_micros)).toBe(costMicros(MODEL, USAGE, { batch: true }));
    expect(data![1]!.step_id).not.toBe("turn-1");
    expect(await timeline(taskId)).not.toContainEqual(expect.objectContaining({ status: "failed" }));
  });

  test("a batch that never ends is cancelled after 25 h of polling and the turn fails, its reservation released", async () => {
    const scenario = "bm-stuck";
    // Only the engine's clock moves: on the double's clock the batch stays in progress forever.
    // ~310 steps, each call resending every memo: a deadline for a loaded machine, not a speed goal.
    const { taskId, run } = await runLoop(scenario, "failed", () => clock.advance(10 * 60_000), 150_000);

    expect(JSON.stringify(run.error)).toMatch(/did not end within 25 h/);
    expect(checkSteps(run as never).size).toBe(bt.MAX_POLLS_PER_SUBMISSION);
    expect(run.history.some((h) => h.step_name === "turn-1-give-up")).toBe(true);
    const batchId = creations(scenario)[0]!.batch_id!;
    expect(double.calls((c) => c.kind === "batches" && c.method === "POST" && c.path.endsWith(`${batchId}/cancel`))).toHaveLength(1);
    expect(await reservations(taskId)).toEqual([expect.objectContaining({ status: "released" })]);
    expect(await timeline(taskId)).toEqual([expect.objectContaining({ step_id: "turn-1", status: "failed" })]);
  }, 180_000);
});

describe("batch-mode turns, called directly", () => {
  test("a batch turn costs half of a Messages turn with the same usage", async () => {
    const scenario = "bm-compare";
    double.script(scenario, [{ text: "Now.", usage: USAGE }, { text: "Overnight.", usage: USAGE }]);
    const prompt = `${scenarioMarker(scenario)} Write the note.`;

    const nowTask = await newTask(scenario);
    const sync = await runModelTurn(sb.admin, turnArgs(nowTask, prompt));
    expect(sync.kind).toBe("answered");

    const batchTask = await newTask(scenario);
    const sub = await bt.submitBatchTurn(sb.admin, turnArgs(batchTask, prompt));
    if (sub.kind !== "submitted") throw new Error(`not submitted: ${sub.kind}`);
    expect(await bt.checkBatchTurn(sb.admin, { ...turnArgs(batchTask, prompt), ticket: sub })).toMatchObject({ kind: "pending", status: "in_progress" });
    double.clock.advance(BATCH_DELAY_MS);
    const answered = await bt.checkBatchTurn(sb.admin, { ...turnArgs(batchTask, prompt), ticket: sub });
    if (answered.kind !== "answered" || sync.kind !== "answered") throw new Error("not answered");

    expect(answered.usage).toEqual(sync.usage);
    expect(sync.cost_micros).toBe(costMicros(MODEL, USAGE));
    expect(answered.cost_micros * 2).toBe(sync.cost_micros);
    expect(double.calls({ scenario, kind: "batch_request" })[0]!.usage!.service_tier).toBe("batch");

    // A repeated check (a retried step) re-reads the same result and pays nothing more.
    const again = await bt.checkBatchTurn(sb.admin, { ...turnArgs(batchTask, prompt), ticket: sub });
    expect(again).toMatchObject({ kind: "answered", cost_micros: answered.cost_micros });
    expect((await taskRow(batchTask)).cost_micros).toBe(answered.cost_micros);
    // The saving (full price − paid) is recorded once per call, on the task and in the spend reports; none on the
    // direct call.
    const saving = sync.cost_micros - answered.cost_micros;
    const { data: rows } = await sb.admin.from("tasks").select("id,batch_saving_micros").in("id", [batchTask, nowTask]);
    expect(Object.fromEntries(rows!.map((r) => [r.id, Number(r.batch_saving_micros)]))).toEqual({ [batchTask]: saving, [nowTask]: 0 });
    const { spendByTask, spendByAgentDay } = await import("@/lib/budget");
    expect(await spendByTask(sb.admin, batchTask)).toMatchObject({ batch_calls: 1, batch_saving_micros: saving });
    const days = await spendByAgentDay(sb.admin, { agentId: AGENT });
    expect(days.reduce((s, d) => s + Number(d.batch_saving_micros), 0)).toBeGreaterThanOrEqual(saving);
    expect(await reservations(batchTask)).toEqual([expect.objectContaining({ status: "settled", actual_micros: answered.cost_micros })]);
  });

  test("submitting the same turn twice returns the first batch", async () => {
    const scenario = "bm-twice";
    const prompt = `${scenarioMarker(scenario)} Write the note.`;
    const taskId = await newTask(scenario);
    const a = await bt.submitBatchTurn(sb.admin, turnArgs(taskId, prompt));
    const b = await bt.submitBatchTurn(sb.admin, { ...turnArgs(taskId, prompt), attempt: 2 });
    if (a.kind !== "submitted" || b.kind !== "submitted") throw new Error("not submitted");
    expect(b.batch_id).toBe(a.batch_id);
    expect(b.submitted_at).toBe(a.submitted_at);
    expect(creations(scenario)).toHaveLength(1);
    expect(await reservations(taskId)).toEqual([expect.objectContaining({ step_id: "turn-1", status: "reserved" })]);
    expect(a.custom_id).toMatch(/^[a-zA-Z0-9_-]{1,64}$/);
  });

  test("cancelOpenBatches cancels a running batch; its check then fails for good and releases", async () => {
    const scenario = "bm-cancel";
    const prompt = `${scenarioMarker(scenario)} Write the note.`;
    const taskId = await newTask(scenario);
    const sub = await bt.submitBatchTurn(sb.admin, turnArgs(taskId, prompt));
    if (sub.kind !== "submitted") throw new Error("not submitted");
    expect(await bt.cancelOpenBatches(sb.admin, taskId)).toBe(1);
    expect(await bt.cancelOpenBatches(sb.admin, taskId)).toBe(0);
    await expect(bt.checkBatchTurn(sb.admin, { ...turnArgs(taskId, prompt), ticket: sub })).rejects.toThrow(/canceled/);
    expect(await reservations(taskId)).toEqual([expect.objectContaining({ status: "released" })]);
  });

  test("the Batches API down: the 5th failure opens its breaker and the turn waits holding nothing; while open nothing is sent; after the cool-down one probe submits and closes it", async () => {
    const scenario = "bm-outage";
    const prompt = `${scenarioMarker(scenario)} Write the note.`;
    await sb.admin.from("breakers").delete().eq("dependency", "claude-batches"); // this file's earlier tests start it clean
    const queued = await newTask(scenario);
    const ticket = await bt.submitBatchTurn(sb.admin, turnArgs(queued, prompt)); // a batch already at Anthropic
    if (ticket.kind !== "submitted") throw new Error("not submitted");
    const taskId = await newTask(scenario);
    const t0 = Date.now();
    const at = (ms: number, attempt = 1): TurnArgs => ({ ...turnArgs(taskId, prompt), now: new Date(t0 + ms), attempt });
    double.faults.add({ kind: "outage", duration_ms: 3_600_000, status: 503 });

    // Four failures are ordinary retriable errors (the step's retries)...
    for (let i = 1; i <= 4; i++) await expect(bt.submitBatchTurn(sb.admin, at(i * 1000, i))).rejects.toThrow(/503/);
    // ... the fifth opens the breaker: the turn waits for the probe instead of failing, and holds no money.
    const down = await bt.submitBatchTurn(sb.admin, at(5000, 5));
    expect(down).toMatchObject({ kind: "dependency_down", dependency: "claude-batches" });
    expect(Date.parse((down as { retry_at: string }).retry_at)).toBe(t0 + 5000 + 60_000);
    expect((await reservations(taskId)).filter((r) => r.status === "reserved")).toEqual([]);
    const { data: open } = await sb.admin.from("breakers").select("state,last_error").eq("dependency", "claude-batches").single();
    expect(open!.state).toBe("open");
    expect(open!.last_error).toMatch(/^Claude's Message Batches API had a server error \(503\)/);

    // While it is open neither a submit nor a poll calls the API.
    const calls = double.calls().length;
    expect(await bt.submitBatchTurn(sb.admin, at(10_000))).toMatchObject({ kind: "dependency_down", retry_at: (down as { retry_at: string }).retry_at });
    expect(await bt.checkBatchTurn(sb.admin, { ...turnArgs(queued, prompt), now: new Date(t0 + 10_000), ticket })).toMatchObject({ kind: "pending", status: "unreachable", error: expect.stringMatching(/^circuit_open/) });
    expect(double.calls().length).toBe(calls);

    // Back up: after the cool-down the one probe submits the turn, and its success closes the breaker.
    double.faults.clear();
    const probe = await bt.submitBatchTurn(sb.admin, at(66_000));
    expect(probe.kind).toBe("submitted");
    expect(creations(scenario)).toHaveLength(2);
    const { data: closed } = await sb.admin.from("breakers").select("state,consecutive_failures").eq("dependency", "claude-batches").single();
    expect(closed).toEqual({ state: "closed", consecutive_failures: 0 });
    expect((await reservations(taskId)).filter((r) => r.status === "reserved")).toHaveLength(1);
    const { count } = await sb.admin.from("notifications").select("id", { count: "exact", head: true }).eq("kind", "dependency_down").like("dedupe_key", "breaker_opened:claude-batches:%");
    expect(count).toBe(1);
  });

  test("the poll schedule backs off from 30 s to 10 min and is bounded", () => {
    expect([1, 2, 3, 4, 5, 6, 7, 50].map(bt.pollDelaySeconds)).toEqual([30, 60, 120, 240, 480, 600, 600, 600]);
    let slept = 0;
    for (let k = 1; k <= bt.MAX_POLLS_PER_SUBMISSION; k++) slept += bt.pollDelaySeconds(k);
    expect(slept).toBeGreaterThanOrEqual(bt.MAX_BATCH_WAIT_SECONDS);
    expect(slept - bt.pollDelaySeconds(bt.MAX_POLLS_PER_SUBMISSION)).toBeLessThan(bt.MAX_BATCH_WAIT_SECONDS);
    // Within Inngest's 1,000 steps per run even at the worst case of one submission (2 steps per poll).
    expect(bt.MAX_POLLS_PER_SUBMISSION * 2).toBeLessThan(1000);
    // An hour-long batch costs about 20 steps.
    let polls = 0;
    for (let s = 0; s < 3600; polls++) s += bt.pollDelaySeconds(polls + 1);
    expect(polls * 2).toBeLessThanOrEqual(22);
  });
});
