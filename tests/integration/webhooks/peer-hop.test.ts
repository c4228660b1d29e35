// The hop to a peer deployment on the app's real functions (run-task, deliver-task-hop) through the local engine,
// with a capture server standing in for the peer: the hop is signed with the secret shared with that peer (not
// NIGHTSHIFT_WEBHOOK_SECRET), verified here by `standardwebhooks`; only a completed task hops; a peer whose secret
// variable is unset gets nothing (the delivery fails with the reason); a disabled peer is refused at submission.
// The two-deployment version is tests/e2e/peer-hop.test.ts.
import { randomBytes } from "node:crypto";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, expect, test } from "vitest";
import { scenarioMarker, type ClaudeDouble } from "../../../local/claude/server";
import { ManualClock } from "../../../local/engine";
import { startAppFixture, type AppFixture } from "../../support/app-fixture";
import { startCaptureServer, type CaptureServer } from "../../support/capture-server";
import { quietTick, until, type TestEngine } from "../../support/engine-harness";
import type { TestSupabase } from "../../support/supabase";

const OWN = `whsec_${randomBytes(32).toString("base64")}`;
const SHARED = `whsec_${randomBytes(32).toString("base64")}`;
let fx: AppFixture;
let sb: TestSupabase;
let double: ClaudeDouble;
let peer: CaptureServer;
let te: TestEngine;
let clock: ManualClock;
let submitTask: typeof import("@/lib/tasks/submit").submitTask;

beforeAll(async () => {
  peer = await startCaptureServer({ handler: (_req, res) => void res.writeHead(202, { "content-type": "application/json" }).end("{}") });
  fx = await startAppFixture({
    clock: new ManualClock(Date.now()),
    unset: ["PEER_UNSET_SECRET"],
    env: {
      NIGHTSHIFT_FETCH_ALLOW: "127.0.0.1",
      NIGHTSHIFT_WEBHOOK_SECRET: OWN,
      PEER_HOP_SECRET: SHARED,
    },
  });
  ({ sb, double, te, clock } = fx);
  ({ submitTask } = await import("@/lib/tasks/submit"));
  const rows = [
    { name: "b", base_url: peer.url, source: "from-a", secret_env_name: "PEER_HOP_SECRET", enabled: true },
    { name: "nosecret", base_url: `${peer.url}/other`, source: "from-a", secret_env_name: "PEER_UNSET_SECRET", enabled: true },
    { name: "off", base_url: peer.url, source: "from-a", secret_env_name: "PEER_HOP_SECRET", enabled: false },
  ];
  expect((await sb.admin.from("peers").insert(rows)).error).toBeNull();
});

afterAll(async () => {
  await fx?.stop();
  await peer?.stop();
});

const submit = async (scenario: string, nextHop: string) =>
  (await submitTask(sb.admin, { agent: "research", prompt: `${scenarioMarker(scenario)} Research.`, next_hop: nextHop }, null, null)).taskId;

const hopOf = (taskId: string) =>
  until(
    async () => {
      const { data } = await sb.admin.from("webhook_deliveries").select("status,kind,attempts,last_error").eq("message_id", `msg_task_hop_${taskId}`).maybeSingle();
      return data && data.status !== "pending" ? data : undefined;
    },
    { tick: quietTick(te.engine, clock, 60_000), timeoutMs: 90_000, message: `the hop of ${taskId} did not end` },
  );

test("a completed task's result goes to its peer, signed with the secret shared with that peer", async () => {
  double.script("hop-ok", [{ text: "Findings for B." }]);
  const taskId = await submit("hop-ok", "b");
  expect(await hopOf(taskId)).toMatchObject({ status: "delivered", kind: "peer", attempts: 1 });
  const sent = peer.requests.filter((r) => r.url === "/api/webhooks/from-a");
  expect(sent).toHaveLength(1);
  const headers = sent[0]!.headers as Record<string, string>;
  expect(headers["webhook-id"]).toBe(`msg_task_hop_${taskId}`);
  expect(new Webhook(SHARED).verify(sent[0]!.body, headers)).toMatchObject({
    type: "task.hop",
    task_id: taskId,
    status: "completed",
    agent: "research",
    peer: "b",
    result: { text: "Findings for B." },
  });
  // Not signed with the deployment's own secret: only the peer's secret verifies it.
  expect(() => new Webhook(OWN).verify(sent[0]!.body, headers)).toThrow();
});

test("a failed task sends no hop", async () => {
  double.script("hop-fail", [{ error: { status: 400, type: "invalid_request_error", message: "messages: bad content" } }]);
  const taskId = await submit("hop-fail", "b");
  // Its end was announced (task/run.finished started the callback function); the hop function did not match it.
  const runs = await until(
    async () => {
      const { data: t } = await sb.admin.from("tasks").select("status").eq("id", taskId).single();
      if (t?.status !== "failed") return undefined;
      const all = await te.engine.listRuns({ function_id: "nightshift-deliver-task-callback" });
      const mine = await Promise.all(all.map((r) => te.engine.getRun(r.run_id)));
      return mine.find((r) => (r?.event as { data?: { task_id?: string } } | undefined)?.data?.task_id === taskId);
    },
    { tick: quietTick(te.engine, clock, 60_000), timeoutMs: 90_000, message: "the failed task's end was not announced" },
  );
  expect(runs).toBeTruthy();
  const hops = await te.engine.listRuns({ function_id: "nightshift-deliver-task-hop" });
  const details = await Promise.all(hops.map((r) => te.engine.getRun(r.run_id)));
  expect(details.filter((r) => (r?.event as { data?: { task_id?: string } }).data?.task_id === taskId)).toHaveLength(0);
  const { count } = await sb.admin.from("webhook_deliveries").select("id", { count: "exact", head: true }).eq("task_id", taskId);
  expect(count).toBe(0);
});

test("a peer whose secret variable is unset gets nothing: the delivery fails naming the variable", async () => {
  double.script("hop-nosecret", [{ text: "Findings." }]);
  const taskId = await submit("hop-nosecret", "nosecret");
  const d = await hopOf(taskId);
  expect(d).toMatchObject({ status: "failed", attempts: 1 });
  expect(d.last_error).toContain("PEER_UNSET_SECRET is not set");
  expect(peer.requests.filter((r) => r.url.startsWith("/other"))).toHaveLength(0);
});

test("a disabled or unknown peer is refused at submission, naming next_hop, and nothing is recorded", async () => {
  const before = (await sb.admin.from("tasks").select("id", { count: "exact", head: true })).count;
  for (const hop of ["off", "nowhere"]) {
    await expect(submit("hop-off", hop)).rejects.toMatchObject({ status: 400, details: [{ field: "next_hop" }] });
  }
  expect((await sb.admin.from("tasks").select("id", { count: "exact", head: true })).count).toBe(before);
});
