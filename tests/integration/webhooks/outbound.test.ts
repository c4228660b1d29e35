// Outbound webhooks end to end: the app's real functions (run-task, deliver-task-callback, task-run-cancelled)
// through the real SDK over HTTP and the local engine with a manual clock, the offline Claude double, and a
// capture server as the receiver. Every signature is checked by the `standardwebhooks` library, as a receiver
// would. Every terminal status announces itself: completed, failed (at once), cancelled.
import { randomBytes } from "node:crypto";
import type { ServerResponse } from "node:http";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, expect, test } from "vitest";
import { scenarioMarker, type ClaudeDouble } from "../../../local/claude/server";
import { ManualClock } from "../../../local/engine";
import { startAppFixture, type AppFixture } from "../../support/app-fixture";
import { startCaptureServer, type CaptureServer, type CapturedRequest } from "../../support/capture-server";
import { quietTick, until, type TestEngine } from "../../support/engine-harness";
import type { TestSupabase } from "../../support/supabase";

const SECRET = `whsec_${randomBytes(32).toString("base64")}`;

let fx: AppFixture;
let sb: TestSupabase;
let double: ClaudeDouble;
let hooks: CaptureServer;
let te: TestEngine;
let clock: ManualClock;
let submitTask: typeof import("@/lib/tasks/submit").submitTask;
let cancelTask: typeof import("@/lib/tasks/cancel").cancelTask;
/** Per path: how many requests to fail first, and with which status. */
const failures = new Map<string, { left: number; status: number }>();

beforeAll(async () => {
  hooks = await startCaptureServer({
    handler: (req: CapturedRequest, res: ServerResponse) => {
      const f = failures.get(req.url);
      if (f && f.left > 0) {
        f.left -= 1;
        res.writeHead(f.status).end();
        return;
      }
      res.writeHead(204).end();
    },
  });
  fx = await startAppFixture({
    clock: new ManualClock(Date.now()),
    env: {
      NIGHTSHIFT_FETCH_ALLOW: "127.0.0.1",
      NIGHTSHIFT_WEBHOOK_SECRET: SECRET,
      // Two failures in a row open a host's breaker; its cool-down is a second of real time.
      NIGHTSHIFT_BREAKER_THRESHOLD: "2",
      NIGHTSHIFT_BREAKER_COOLDOWN_S: "1",
    },
  });
  ({ sb, double, te, clock } = fx);
  ({ submitTask } = await import("@/lib/tasks/submit"));
  ({ cancelTask } = await import("@/lib/tasks/cancel"));
});

afterAll(async () => {
  await fx?.stop();
  await hooks?.stop();
});

const at = (path: string) => hooks.requests.filter((r) => r.method === "POST" && r.url === path);

async function submit(scenario: string, agent: string, path: string) {
  const { taskId } = await submitTask(
    sb.admin,
    { agent, prompt: `${scenarioMarker(scenario)} Do the thing.`, callback_url: `${hooks.url}${path}` },
    null,
    null,
  );
  return taskId;
}

async function delivery(taskId: string) {
  const { data } = await sb.admin
    .from("webhook_deliveries")
    .select("status,attempts,message_id,webhook_delivery_attempts(attempt,outcome,status_code)")
    .eq("task_id", taskId)
    .maybeSingle();
  return data;
}

/** Waits until the task's delivery ended, moving the engine's clock so backoffs pass. */
const deliveryEnds = (taskId: string) =>
  until(async () => {
    const d = await delivery(taskId);
    return d && d.status !== "pending" ? d : undefined;
  }, { tick: quietTick(te.engine, clock, 60_000), message: `delivery of ${taskId} did not end`, timeoutMs: 90_000 });

const verify = (r: CapturedRequest) => new Webhook(SECRET).verify(r.body, r.headers as Record<string, string>) as Record<string, unknown>;

test("a receiver that fails twice with 503 gets the callback on the third attempt: same webhook-id, fresh signature each time", async () => {
  failures.set("/flaky", { left: 2, status: 503 });
  double.script("cb-flaky", [{ text: "Findings." }]);
  const taskId = await submit("cb-flaky", "research", "/flaky");
  const d = await deliveryEnds(taskId);
  expect(d.status).toBe("delivered");
  expect(d.attempts).toBe(3);
  expect([...d.webhook_delivery_attempts].sort((a, b) => a.attempt - b.attempt).map((a) => [a.outcome, a.status_code])).toEqual([
    ["retry", 503],
    ["retry", 503],
    ["delivered", 204],
  ]);
  const sent = at("/flaky");
  expect(sent).toHaveLength(3);
  expect(new Set(sent.map((r) => r.headers["webhook-id"]))).toEqual(new Set([`msg_task_finished_${taskId}`]));
  expect(new Set(sent.map((r) => r.body)).size).toBe(1); // the same body every time; only the signature is new
  for (const r of sent) expect(verify(r)).toMatchObject({ type: "task.finished", task_id: taskId, status: "completed" });
  // The two 503s in a row opened the host's circuit breaker (the operator was told); the third attempt was its
  // probe, and its success closed it.
  const dep = `callback:${new URL(hooks.url).host}`;
  const { data: breaker } = await sb.admin.from("breakers").select("state,last_success_at").eq("dependency", dep).single();
  expect(breaker).toMatchObject({ state: "closed" });
  const { data: notices } = await sb.admin.from("notifications").select("kind").like("dedupe_key", `breaker_opened:${dep}:%`);
  expect(notices).toHaveLength(1);
  // A tampered copy does not verify.
  expect(() => new Webhook(SECRET).verify(sent[0]!.body.replace("completed", "failed"), sent[0]!.headers as Record<string, string>)).toThrow();
});

test("a 4xx other than 408/429 is final: one attempt, the delivery failed", async () => {
  failures.set("/gone", { left: 100, status: 410 });
  double.script("cb-gone", [{ text: "Done." }]);
  const taskId = await submit("cb-gone", "research", "/gone");
  const d = await deliveryEnds(taskId);
  expect(d).toMatchObject({ status: "failed", attempts: 1 });
  expect(at("/gone")).toHaveLength(1);
});

test("a task that fails at once announces itself: callback and task/run.finished with status failed", async () => {
  double.script("cb-fail", [{ error: { status: 400, type: "invalid_request_error", message: "messages: bad content" } }]);
  const taskId = await submit("cb-fail", "research", "/failed");
  const d = await deliveryEnds(taskId);
  expect(d.status).toBe("delivered");
  expect(verify(at("/failed")[0]!)).toMatchObject({ task_id: taskId, status: "failed" });
  expect(at("/failed")).toHaveLength(1);
});

test("a cancelled task announces itself once", async () => {
  double.script("cb-cancel", [{ text: "A draft to review." }]);
  const taskId = await submit("cb-cancel", "content", "/cancelled");
  await until(async () => {
    const { data } = await sb.admin.from("tasks").select("status").eq("id", taskId).single();
    return data?.status === "waiting_approval";
  }, { tick: quietTick(te.engine, clock, 15_000), message: "draft never waited for approval", timeoutMs: 90_000 });
  expect((await cancelTask(sb.admin, taskId, "owner changed their mind", "test")).outcome).toBe("cancelled");
  const d = await deliveryEnds(taskId);
  expect(d.status).toBe("delivered");
  expect(verify(at("/cancelled")[0]!)).toMatchObject({ task_id: taskId, status: "cancelled" });
  // Give any second announcement a chance to show up, then check there was none.
  for (let i = 0; i < 5; i++) {
    await until(() => te.engine.idle(), { timeoutMs: 90_000, message: "the engine never went quiet" });
    clock.advance(60_000);
  }
  await new Promise((r) => setTimeout(r, 500));
  await until(() => te.engine.idle(), { timeoutMs: 90_000, message: "the engine never went quiet" });
  expect(at("/cancelled")).toHaveLength(1);
});
