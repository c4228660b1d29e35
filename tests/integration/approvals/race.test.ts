// The early-decision race, 50 times: a decision made the instant the approval becomes visible is honoured and the
// run resumes within seconds — through the local engine, which (like Inngest) ignores events that arrive before a
// wait is registered. The manual clock never moves here, so no resume can come from the 24-hour deadline.
import { afterAll, beforeAll, expect, test } from "vitest";
import { runReaches, until } from "../../support/engine-harness";
import {
  approvalOf,
  expectCount,
  percentile,
  postDecision,
  startFlow,
  startStack,
  taskEnds,
  visibleApproval,
  type Stack,
} from "./stack";

let s: Stack;

beforeAll(async () => {
  s = await startStack();
});

afterAll(async () => {
  await s?.close();
});

const ITERATIONS = 50;
const PARALLEL = Number(process.env["RACE_PARALLEL"] ?? 5);
const DECISIONS = [
  { decision: "approve" },
  { decision: "approve_with_changes", notes: "Shorter title, and cite the source." },
  { decision: "reject", notes: "Off topic for this week." },
] as const;

test(`a decision sent the instant the approval is visible is honoured, ${ITERATIONS} times, without the clock moving`, async () => {
  const clockAtStart = s.clock.now();
  const latencies: number[] = [];

  async function iteration(i: number): Promise<void> {
    const body = DECISIONS[i % DECISIONS.length]!;
    const viaRoute = i % 2 === 0;
    const { taskId, runId } = await startFlow(s);
    const approval = await visibleApproval(s, taskId);

    // At once: no pause between seeing the approval and deciding.
    const decidedAt = performance.now();
    if (viaRoute) {
      const res = await postDecision(s, approval.id, body);
      expect(res.status, await res.clone().text()).toBe(200);
      expect(((await res.json()) as { outcome: string }).outcome).toBe("decided");
    } else {
      const r = await s.approvals.decideApproval(s.sb.admin, approval.id, body, "console:race-test", "console");
      expect(r.outcome).toBe("decided");
    }

    // Wait in memory (the served function runs in this process), so this test's polling does not load the
    // database and the engine it is measuring; then read the task once.
    const finishedKey = body.decision === "reject" ? `rejected:${taskId}` : `published:${taskId}`;
    await until(() => s.hooks.counter.get(finishedKey) > 0, { timeoutMs: 10_000, intervalMs: 5, message: `task ${taskId} did not finish` });
    const task = await taskEnds(s, taskId, 10_000);
    const resumedAt = s.hooks.resumedAt.get(taskId);
    expect(resumedAt, "the run resumed").toBeDefined();
    latencies.push(resumedAt! - decidedAt);

    const expected = body.decision === "reject" ? "rejected" : "completed";
    expect(task.status).toBe(expected);
    const run = await runReaches(s.t.engine, runId, "completed");
    // The wait was registered before the publish step ran (same engine transition as its planning).
    const at = (type: string, name: string) => run.history.findIndex((h) => h.type === type && h.step_name === name);
    const waitRegistered = at("step.waiting", "approval-draft-1-wait");
    expect(waitRegistered).toBeGreaterThanOrEqual(0);
    expect(at("step.completed", "approval-draft-1-publish")).toBeGreaterThan(waitRegistered);
    // Woken by the event, not by the deadline.
    expect(run.history.some((h) => h.type === "wait.matched")).toBe(true);
    expect(run.history.some((h) => h.type === "wait.timed_out")).toBe(false);
    const row = await approvalOf(s, taskId);
    expect(row?.decided_via).toBe(viaRoute ? "api" : "console");
    expectCount(s, `resumed:${taskId}`, 1);
    expectCount(s, `published:${taskId}`, expected === "completed" ? 1 : 0);
    expectCount(s, `rejected:${taskId}`, expected === "rejected" ? 1 : 0);
    if (body.decision === "approve_with_changes") {
      expectCount(s, `revised:${taskId}`, 1);
      expect(JSON.stringify(task.result)).toContain("revised: Shorter title, and cite the source.");
    }
  }

  let next = 0;
  await Promise.all(
    Array.from({ length: PARALLEL }, async () => {
      while (next < ITERATIONS) await iteration(next++);
    }),
  );

  expect(s.clock.now(), "the manual clock never moved").toBe(clockAtStart);
  expect(latencies).toHaveLength(ITERATIONS);
  const sorted = [...latencies].sort((a, b) => a - b);
  const fmt = (ms: number) => `${ms.toFixed(1)} ms`;
  console.log(
    `[approvals race] decision -> run resumed over ${ITERATIONS} iterations (${PARALLEL} at a time): ` +
      `p50 ${fmt(percentile(sorted, 50))}, p90 ${fmt(percentile(sorted, 90))}, p99 ${fmt(percentile(sorted, 99))}, ` +
      `max ${fmt(sorted.at(-1)!)}`,
  );
  // "Within seconds, not at the deadline": every one of them.
  expect(sorted.at(-1)!).toBeLessThan(5_000);
}, 120_000);
