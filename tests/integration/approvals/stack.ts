// The approvals test stack: the shared app fixture (a private Supabase, the local Inngest engine with a manual clock,
// the environment) serving a test function that uses awaitApproval, by the real SDK over HTTP. The app's own modules
// (lib/approvals, the route, inngest/approval) are imported after the environment points them at this stack.
//
// The test function (`approval-flow`) is what an agent with a reviewed draft does: mark the task running, write a
// draft, await approval, then publish it (approve), revise it with the reviewer's notes and publish (approve with
// changes), or end the task rejected with the feedback (reject, or the deadline's auto-reject). Each side effect
// counts its executions so the tests can assert "exactly once".
import type { GetStepTools, Inngest, InngestFunction } from "inngest";
import { expect } from "vitest";
import { ManualClock } from "../../../local/engine";
import { startAppFixture } from "../../support/app-fixture";
import { Counter, latch, runFor, until, type ServedApp, type TestEngine } from "../../support/engine-harness";
import type { TestSupabase } from "../../support/supabase";

export const FLOW_FN = "nightshift-approval-flow";
export const START_EVENT = "test/approval-flow.started";
const HOUR = 3_600_000;
export const DAY = 24 * HOUR;

export interface Hooks {
  counter: Counter;
  /** Wall time (performance.now) when the step right after awaitApproval ran, by task id. */
  resumedAt: Map<string, number>;
  /** Tasks whose request step is held open after request_approval ran (before the wait exists). */
  holdRequest: Map<string, ReturnType<typeof latch>>;
  /** What awaitApproval returned, by task id. */
  outcomes: Map<string, unknown>;
}

export interface Stack {
  sb: TestSupabase;
  t: TestEngine;
  clock: ManualClock;
  app: ServedApp;
  hooks: Hooks;
  apiKey: string;
  inngest: Inngest.Any;
  approvals: typeof import("@/lib/approvals");
  route: typeof import("@/app/api/approvals/[id]/route");
  close(): Promise<void>;
}

export async function startStack(): Promise<Stack> {
  // The manual clock starts at the wall clock's now, so times the route records (wall clock) and times the
  // function records (engine clock) read sensibly side by side; it moves only when a test advances it.
  const clock = new ManualClock(Date.now());
  const hooks: Hooks = { counter: new Counter(), resumedAt: new Map(), holdRequest: new Map(), outcomes: new Map() };
  // No model in these flows: the double is started but never called.
  const fx = await startAppFixture({ clock, serve: async (inngest) => ({ functions: [await flowFunction(inngest, hooks, clock)] }) });
  try {
    const { inngest } = await import("@/inngest/client");
    const approvals = await import("@/lib/approvals");
    const route = await import("@/app/api/approvals/[id]/route");
    const { createApiKey } = await import("@/lib/api-keys");
    const apiKey = (await createApiKey(fx.sb.admin, "approval tests")).key;
    return { sb: fx.sb, t: fx.te, clock, app: fx.app, hooks, apiKey, inngest, approvals, route, close: () => fx.stop() };
  } catch (err) {
    await fx.stop();
    throw err;
  }
}

async function flowFunction(inngest: Inngest.Any, h: Hooks, clock: ManualClock): Promise<InngestFunction.Any> {
  const { awaitApproval } = await import("@/inngest/approval");
  const { db } = await import("@/lib/db/server");
  const { finishTask, startTask } = await import("@/lib/tasks/lifecycle");
  const c = h.counter;

  return inngest.createFunction(
    { id: "approval-flow", retries: 2, triggers: [{ event: START_EVENT }] },
    async ({ event, step, runId }) => {
      const data = event.data as { task_id: string; auto_action?: "reject" | "approve" };
      const taskId = data.task_id;
      const started = await step.run("start", () => startTask(db(), taskId, runId).then((t) => t !== null));
      if (!started) return { skipped: true };
      const draft = await step.run("write-draft", () => {
        c.hit(`draft:${taskId}`);
        return { text: `Draft for task ${taskId}` };
      });

      const outcome = await awaitApproval(holdable(step, h.holdRequest.get(taskId)), {
        taskId,
        stage: "draft",
        revision: 1,
        draft,
        timeoutSeconds: 24 * 60 * 60,
        autoAction: data.auto_action ?? "reject",
        now: () => new Date(clock.now()),
      });

      await step.run("resumed", () => {
        if (!h.resumedAt.has(taskId)) h.resumedAt.set(taskId, performance.now());
        h.outcomes.set(taskId, outcome);
        c.hit(`resumed:${taskId}`);
      });

      if (outcome.decision === "reject") {
        await step.run("finish-rejected", () => {
          c.hit(`rejected:${taskId}`);
          return finishTask(db(), taskId, {
            status: "rejected",
            reason: outcome.decided_via === "timeout" ? "no decision before the deadline (auto-reject)" : "rejected by the reviewer",
            result: { draft: draft.text, feedback: outcome.notes },
          });
        });
        return { task_id: taskId, status: "rejected", approval: outcome.status };
      }

      let text = draft.text;
      if (outcome.decision === "approve_with_changes") {
        text = await step.run("revise-1", () => {
          c.hit(`revised:${taskId}`);
          return `${draft.text} (revised: ${outcome.notes})`;
        });
      }
      await step.run("publish", () => {
        c.hit(`published:${taskId}`);
        return finishTask(db(), taskId, { status: "completed", result: { text, approval: outcome.status } });
      });
      return { task_id: taskId, status: "completed", approval: outcome.status, text };
    },
  );
}

/**
 * The function's own step tools, except that the approval's request step — once request_approval has run — holds
 * until the test opens the latch: the wait does not exist yet, which is the window of the early-event race.
 */
function holdable<S extends GetStepTools<Inngest.Any>>(step: S, hold: ReturnType<typeof latch> | undefined): S {
  if (!hold) return step;
  const run = (id: string, fn: () => unknown) =>
    step.run(id, async () => {
      const out = await fn();
      if (id.endsWith("-request")) {
        hold.arrive();
        await hold.promise;
      }
      return out;
    });
  return { ...step, run } as unknown as S;
}

// ------------------------------------------------------------------ helpers for tests

export async function createTask(s: Stack, prompt = "Write tonight's post"): Promise<string> {
  const { data, error } = await s.sb.admin.from("tasks").insert({ agent_id: "content", prompt }).select("id").single();
  if (error) throw error;
  return data.id;
}

/** Starts a flow run for a new task; returns the task id and the run id. */
export async function startFlow(
  s: Stack,
  opts: { autoAction?: "reject" | "approve"; holdRequest?: boolean } = {},
): Promise<{ taskId: string; runId: string; hold?: ReturnType<typeof latch> }> {
  const taskId = await createTask(s);
  let hold: ReturnType<typeof latch> | undefined;
  if (opts.holdRequest) s.hooks.holdRequest.set(taskId, (hold = latch()));
  const { ids } = await s.inngest.send({ name: START_EVENT, data: { task_id: taskId, auto_action: opts.autoAction } });
  const runId = await runFor(s.t.engine, ids[0]!, FLOW_FN);
  return { taskId, runId, hold };
}

export interface ApprovalRowLite {
  id: string;
  status: string;
  visible_at: string | null;
  decided_via: string | null;
  decided_by: string | null;
  notes: string | null;
  expires_at: string;
  decided_at: string | null;
}

export async function approvalOf(s: Stack, taskId: string): Promise<ApprovalRowLite | null> {
  const { data, error } = await s.sb.admin
    .from("approvals")
    .select("id,status,visible_at,decided_via,decided_by,notes,expires_at,decided_at")
    .eq("task_id", taskId)
    .maybeSingle();
  if (error) throw error;
  return data;
}

/** Polls (tightly) until the task's approval is visible: the earliest moment a reviewer could decide. */
export async function visibleApproval(s: Stack, taskId: string): Promise<ApprovalRowLite> {
  return until(
    async () => {
      const a = await approvalOf(s, taskId);
      return a?.visible_at ? a : undefined;
    },
    { intervalMs: 5, message: `approval of task ${taskId} never became visible` },
  );
}

export async function taskRow(s: Stack, taskId: string) {
  const { data, error } = await s.sb.admin.from("tasks").select("status,status_reason,result").eq("id", taskId).single();
  if (error) throw error;
  return data;
}

export async function taskEnds(s: Stack, taskId: string, timeoutMs = 20_000) {
  return until(
    async () => {
      const t = await taskRow(s, taskId);
      return ["completed", "rejected", "failed", "stopped", "cancelled"].includes(t.status) ? t : undefined;
    },
    { timeoutMs, intervalMs: 5, message: `task ${taskId} did not finish` },
  );
}

/** Calls the route handler as Next.js would. */
export function postDecision(s: Stack, id: string, body: unknown, key: string | null = s.apiKey): Promise<Response> {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (key !== null) headers["authorization"] = `Bearer ${key}`;
  return s.route.POST(
    new Request(`http://localhost:3000/api/approvals/${id}`, {
      method: "POST",
      headers,
      body: typeof body === "string" ? body : JSON.stringify(body),
    }),
    { params: Promise.resolve({ id }) },
  );
}

export function getApprovalRoute(s: Stack, id: string, key: string | null = s.apiKey): Promise<Response> {
  const headers: Record<string, string> = {};
  if (key !== null) headers["authorization"] = `Bearer ${key}`;
  return s.route.GET(new Request(`http://localhost:3000/api/approvals/${id}`, { headers }), {
    params: Promise.resolve({ id }),
  });
}

export function expectCount(s: Stack, key: string, n: number): void {
  expect(s.hooks.counter.get(key), key).toBe(n);
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, i)]!;
}
