// A full Claude outage of 10 minutes on a manual clock, through the app's real Inngest functions on the local engine,
// the real database and the offline double (whose clock is the engine's): the breaker opens after 5 failures, at most
// one probe per cool-down reaches the double while it is down, no task fails (tasks wait, `waiting_dependency`), the
// operator hears once that it opened and once that it closed, and every task completes after the recovery.
// npm test runs 12 tasks; NIGHTSHIFT_FAULT_TASKS=40 runs the issue's full 40 (same assertions).
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { scenarioMarker, type ClaudeDouble } from "../../../local/claude/server";
import { ManualClock } from "../../../local/engine";
import { startAppFixture, type AppFixture } from "../../support/app-fixture";
import { quietTick, until, type TestEngine } from "../../support/engine-harness";
import type { TestSupabase } from "../../support/supabase";

const TASKS = Number(process.env["NIGHTSHIFT_FAULT_TASKS"] ?? 12);
const OUTAGE_MS = 10 * 60_000;

let fx: AppFixture;
let sb: TestSupabase;
let double: ClaudeDouble;
let te: TestEngine;
let clock: ManualClock;
let submitTask: typeof import("@/lib/tasks/submit").submitTask;

beforeAll(async () => {
  clock = new ManualClock(Date.now());
  fx = await startAppFixture({ clock, double: { onEngineClock: true } });
  ({ sb, double, te } = fx);
  ({ submitTask } = await import("@/lib/tasks/submit"));
  // Room for every task at once: the outage, not the agent's concurrency, is what they wait for.
  await sb.admin.from("agents").update({ concurrency: 8, daily_budget_micros: 50_000_000 }).eq("id", "research");
}, 60_000);

afterAll(() => fx?.stop());

describe("a 10-minute Claude outage", () => {
  test(`${TASKS} tasks wait through it behind one breaker and all complete after the recovery`, async () => {
    const outageStart = clock.now();
    double.faults.add({ kind: "outage", duration_ms: OUTAGE_MS, status: 529 });
    const ids: string[] = [];
    for (let i = 0; i < TASKS; i++) {
      ids.push((await submitTask(sb.admin, { agent: "research", prompt: `${scenarioMarker(`outage-${i}`)} Summarize item ${i}.` }, null, null)).taskId);
    }

    // The start events are relayed from the outbox, so the runs start a moment after the submissions: the clock
    // stands still until the first calls have opened the breaker, as it would have in the night it stands for.
    await until(
      async () =>
        (await sb.admin.from("breakers").select("state").eq("dependency", "claude:claude-sonnet-4-6").maybeSingle()).data?.state === "open",
      { timeoutMs: 60_000, message: "the breaker never opened" },
    );

    const statuses = async () => {
      const { data } = await sb.admin.from("tasks").select("id,status,status_reason").in("id", ids);
      return data!;
    };
    // The breaker opens and the tasks wait for it, saying what for. (The failures before it opened wait too, a short
    // backoff that spends no retry attempt: "whose last call failed ... (not counted as a retry)".)
    const downReason = /^waiting for claude:claude-sonnet-4-6, which is down .*; next try at /;
    const waiting = await until(async () => {
      const s = await statuses();
      return s.some((t) => t.status === "waiting_dependency" && downReason.test(t.status_reason ?? "")) ? s : undefined;
    }, { timeoutMs: 60_000, tick: quietTick(te.engine, clock, 5_000), message: "no task waited for the dependency" });
    for (const t of waiting.filter((x) => x.status === "waiting_dependency")) {
      expect(t.status_reason).toMatch(/^waiting for claude:claude-sonnet-4-6, (which is down|whose last call failed) \(Claude was overloaded \(529\).*\); (next try|trying again) at /);
    }

    // Time passes in 10-second ticks until every task has ended. Ticks happen only while the engine is idle, so calls
    // admitted before the breaker opened reach the double at the moment it opened, never "later" because the
    // machine was slow to send them.
    const done = await until(async () => {
      const s = await statuses();
      return s.every((t) => ["completed", "failed", "stopped", "rejected", "cancelled"].includes(t.status)) ? s : undefined;
    }, { timeoutMs: 60_000 + TASKS * 5_000, tick: quietTick(te.engine, clock, 10_000), message: "the tasks did not all end" });
    expect(done.filter((t) => t.status !== "completed")).toEqual([]);
    expect(clock.now() - outageStart).toBeGreaterThan(OUTAGE_MS);

    // Requests that reached the double while it was down: the failures that opened the breaker (5, plus the calls
    // already in flight), then one probe per cool-down (60 s, 120 s, 240 s, 480 s: three fall inside 10 minutes).
    const down = double.calls((c) => c.kind === "messages" && c.outcome.startsWith("fault"));
    const opened = await sb.admin.from("notifications").select("kind,dedupe_key,created_at").in("kind", ["dependency_down", "dependency_recovered"]);
    expect(opened.data!.map((n) => n.kind).sort()).toEqual(["dependency_down", "dependency_recovered"]);
    const inFlight = 8; // the agent's concurrency: calls that left before the breaker opened
    expect(down.length).toBeGreaterThanOrEqual(5);
    expect(down.length).toBeLessThanOrEqual(5 + inFlight + 3);
    // After the 5th failure, at most one request per cool-down window: group the failures by the breaker's schedule.
    const times = down.map((c) => Date.parse(c.at)).sort((a, b) => a - b);
    const openedAt = times[4]!;
    const afterOpen = times.filter((t) => t > openedAt + 1_000);
    expect(afterOpen.length).toBeLessThanOrEqual(3);
    for (let i = 1; i < afterOpen.length; i++) expect(afterOpen[i]! - afterOpen[i - 1]!).toBeGreaterThanOrEqual(60_000);

    // No task burned a retry attempt: not the calls that met the open breaker, nor the failures that opened it.
    const runs = await te.engine.listRuns({ function_id: "nightshift-run-task" });
    const retried: string[] = [];
    for (const r of runs) {
      const detail = await te.engine.getRun(r.run_id);
      retried.push(...detail!.history.filter((h) => h.type === "step.errored" || h.type === "run.retrying").map((h) => `${r.run_id} ${h.type} ${h.step_name}`));
    }
    expect(runs.length).toBeGreaterThanOrEqual(TASKS);
    expect(retried).toEqual([]);

    const { data: b } = await sb.admin.from("breakers").select("state,consecutive_failures").eq("dependency", "claude:claude-sonnet-4-6").single();
    expect(b).toEqual({ state: "closed", consecutive_failures: 0 });
    const { count: dl } = await sb.admin.from("dead_letters").select("id", { count: "exact", head: true });
    expect(dl).toBe(0);
    // No reservation is left open, and every answered call was paid once.
    const { data: open } = await sb.admin.from("budget_reservations").select("id").eq("status", "reserved");
    expect(open).toEqual([]);
  }, 60_000 + TASKS * 5_000);
});

describe("a run stopped by its time limit", () => {
  test("a task still waiting for a dead dependency after 72 h gives up as a time limit and lands in the dead-letter queue", async () => {
    double.faults.clear();
    double.faults.add({ kind: "outage", duration_ms: 100 * 3_600_000, status: 503 });
    // Day-long cool-downs, so the wait spans the 72-hour bound (run-task's DEPENDENCY_GIVE_UP_MS) in a few probes —
    // long before the run's own 16-day limit (RUN_FINISH, which leaves room for approvals).
    const { resetEnvCache } = await import("@/lib/env");
    Object.assign(process.env, { NIGHTSHIFT_BREAKER_COOLDOWN_S: "86400", NIGHTSHIFT_BREAKER_MAX_COOLDOWN_S: "86400", NIGHTSHIFT_BREAKER_THRESHOLD: "1" });
    resetEnvCache();
    try {
      const { taskId } = await submitTask(sb.admin, { agent: "outreach", prompt: `${scenarioMarker("outage-72h")} Draft it.` }, null, null);
      const failed = await until(async () => {
        const { data } = await sb.admin.from("tasks").select("status,status_reason").eq("id", taskId).single();
        return data!.status === "failed" ? data : undefined;
      }, { timeoutMs: 120_000, tick: () => clock.advance(3_600_000), message: "the task was not failed by its time limit" });
      expect(failed!.status_reason).toMatch(/^claude:\S+ stayed down for 72 h, and the run stopped waiting for it\./);
      const { data: dl } = await sb.admin.from("dead_letters").select("failure_kind,summary,status").eq("task_id", taskId).single();
      expect(dl).toMatchObject({ failure_kind: "timeout", status: "pending" });
      expect(dl!.summary).toMatch(/stayed down for 72 h/);
    } finally {
      for (const k of ["NIGHTSHIFT_BREAKER_COOLDOWN_S", "NIGHTSHIFT_BREAKER_MAX_COOLDOWN_S", "NIGHTSHIFT_BREAKER_THRESHOLD"]) delete process.env[k];
      resetEnvCache();
      double.faults.clear();
    }
  });
});
