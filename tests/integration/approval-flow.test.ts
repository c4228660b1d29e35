// Drafts that need a human, through the app's real run-task function, the real SDK over HTTP and the local engine:
// approve publishes the draft to the task's callback once, approve-with-changes sends the notes back for a
// revision, reject ends the task rejected; and the side-venture morning: 10 drafts, 7 approved, 3 rejected,
// exactly 7 published, each once.
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, expect, test } from "vitest";
import { scenarioMarker, type ClaudeDouble } from "../../local/claude/server";
import { ManualClock } from "../../local/engine";
import { startCaptureServer, type CaptureServer } from "../support/capture-server";
import { startAppFixture, type AppFixture } from "../support/app-fixture";
import { until } from "../support/engine-harness";
import type { TestSupabase } from "../support/supabase";

let fx: AppFixture;
let sb: TestSupabase;
let double: ClaudeDouble;
let hooks: CaptureServer;
let clock: ManualClock;
let submitTask: typeof import("@/lib/tasks/submit").submitTask;
let decideApproval: typeof import("@/lib/approvals").decideApproval;

beforeAll(async () => {
  hooks = await startCaptureServer({
    handler: (req, res) => {
      res.writeHead(req.method === "POST" ? 204 : 404).end();
    },
  });
  // The engine's clock starts at the wall clock: the app stamps approvals with real time.
  clock = new ManualClock(Date.now());
  fx = await startAppFixture({
    clock,
    env: {
      NIGHTSHIFT_FETCH_ALLOW: "127.0.0.1",
      NIGHTSHIFT_WEBHOOK_SECRET: `whsec_${Buffer.from("test-webhook-secret-of-32-bytes!").toString("base64")}`,
    },
  });
  ({ sb, double } = fx);
  ({ submitTask } = await import("@/lib/tasks/submit"));
  ({ decideApproval } = await import("@/lib/approvals"));
});

afterAll(async () => {
  await fx?.stop();
  await hooks?.stop();
});

async function draft(scenario: string, text: string) {
  double.script(scenario, [{ text }]);
  const { taskId } = await submitTask(
    sb.admin,
    { agent: "content", prompt: `${scenarioMarker(scenario)} Write tonight's post.`, callback_url: `${hooks.url}/publish` },
    null,
    null,
  );
  const approval = await until(async () => {
    const { data } = await sb.admin.from("approvals").select("id,visible_at,draft").eq("task_id", taskId).not("visible_at", "is", null);
    return data?.[0];
    // Content runs two at a time (its concurrency slots): the others wait in line and are woken as slots are handed
    // over (a chain of real calls, not the engine's clock: hence the longer deadline on a busy machine).
  }, { message: `no visible approval for ${taskId}`, tick: () => clock.advance(15_000), timeoutMs: 120_000 });
  return { taskId, approval };
}

async function task(taskId: string) {
  const { data } = await sb.admin.from("tasks").select("status,status_reason,result").eq("id", taskId).single();
  return data!;
}

const ended = (taskId: string) =>
  until(async () => {
    const t = await task(taskId);
    return ["completed", "rejected", "stopped", "failed"].includes(t.status) ? t : undefined;
  }, { message: `task ${taskId} did not end` });

const published = (taskId: string) =>
  hooks.requests.filter((r) => r.method === "POST" && (r.json as { task_id?: string })?.task_id === taskId);

test("a content draft waits for approval; approve completes it and publishes it once, signed", async () => {
  const { taskId, approval } = await draft("flow-approve", "Ten tips for sleeping well.");
  expect((approval.draft as { text: string }).text).toBe("Ten tips for sleeping well.");
  expect((await task(taskId)).status).toBe("waiting_approval");

  const r = await decideApproval(sb.admin, approval.id, { decision: "approve" }, "test", "api");
  expect(r.outcome).toBe("decided");
  const t = await ended(taskId);
  expect(t.status).toBe("completed");
  expect(t.result).toMatchObject({ text: "Ten tips for sleeping well.", approval: { decision: "approve" } });
  await until(() => published(taskId).length === 1);
  const hook = published(taskId)[0]!;
  expect(hook.json).toMatchObject({ type: "task.finished", task_id: taskId, status: "completed" });
  // Standard Webhooks: the receiver's own library verifies it (throws on a bad signature or an old timestamp).
  expect(hook.headers["webhook-id"]).toBe(`msg_task_finished_${taskId}`);
  new Webhook(process.env.NIGHTSHIFT_WEBHOOK_SECRET!).verify(hook.body, hook.headers as Record<string, string>);
});

test("edit, then approve: the reviewer's text is the result and what the callback publishes; a different edit is a conflict", async () => {
  const scenario = "flow-edit";
  const { taskId, approval } = await draft(scenario, "Ten tips for sleepng well.");
  const edited = "# Ten tips for sleeping well\n\nFixed by a human.";
  const r = await decideApproval(sb.admin, approval.id, { decision: "approve", edited_text: edited }, "test", "api");
  expect(r).toMatchObject({ outcome: "decided", approval: { status: "approved", edited_text: edited } });
  // A repeat with the same text is a repeat; another text (or none) cannot change what was decided.
  expect((await decideApproval(sb.admin, approval.id, { decision: "approve", edited_text: edited }, "test", "api")).outcome).toBe("repeat");
  expect((await decideApproval(sb.admin, approval.id, { decision: "approve", edited_text: "Other." }, "test", "api")).outcome).toBe("conflict");
  const t = await ended(taskId);
  expect(t.status).toBe("completed");
  expect(t.result).toMatchObject({ text: edited, approval: { decision: "approve", edited: true } });
  await until(() => published(taskId).length === 1);
  expect(published(taskId)[0]!.json).toMatchObject({ status: "completed", result: { text: edited } });
  // The model was asked once: the edit is published as is, not revised.
  expect(double.calls({ scenario, kind: "messages" })).toHaveLength(1);
});

test("approve with changes sends the notes back; the agent revises, then the task completes", async () => {
  const scenario = "flow-changes";
  const { taskId, approval } = await draft(scenario, "First draft.");
  double.script(scenario, [{ text: "Revised draft, shorter." }]);
  await decideApproval(sb.admin, approval.id, { decision: "approve_with_changes", notes: "Make it shorter." }, "test", "api");
  const t = await ended(taskId);
  expect(t.status).toBe("completed");
  expect(t.result).toMatchObject({ text: "Revised draft, shorter.", approval: { decision: "approve_with_changes", notes: "Make it shorter." } });
  const calls = double.calls({ scenario, kind: "messages" });
  expect(calls).toHaveLength(2);
  expect(JSON.stringify(calls[1]!.body)).toContain("Make it shorter.");
});

test("reject ends the task rejected with the feedback; nothing is published as completed", async () => {
  const { taskId, approval } = await draft("flow-reject", "A weak draft.");
  await decideApproval(sb.admin, approval.id, { decision: "reject", notes: "Off-brand." }, "test", "api");
  const t = await ended(taskId);
  expect(t.status).toBe("rejected");
  expect(t.status_reason).toBe("rejected: Off-brand.");
  await until(() => published(taskId).length === 1);
  expect(published(taskId)[0]!.json).toMatchObject({ status: "rejected" });
});

test("the side-venture morning: 10 drafts overnight, 7 approved and 3 rejected, exactly 7 published once each", async () => {
  const drafts = await Promise.all(Array.from({ length: 10 }, (_, i) => draft(`morning-${i}`, `Draft number ${i}.`)));
  await Promise.all(
    drafts.map((d, i) =>
      decideApproval(sb.admin, d.approval.id, i < 7 ? { decision: "approve" } : { decision: "reject", notes: "not this one" }, "owner", "console"),
    ),
  );
  const outcomes = await Promise.all(drafts.map((d) => ended(d.taskId)));
  expect(outcomes.filter((t) => t.status === "completed")).toHaveLength(7);
  expect(outcomes.filter((t) => t.status === "rejected")).toHaveLength(3);
  await until(() => drafts.every((d) => published(d.taskId).length === 1), { message: "every task delivered once" });
  const completedHooks = drafts.flatMap((d) => published(d.taskId)).filter((h) => (h.json as { status: string }).status === "completed");
  expect(completedHooks).toHaveLength(7);
  expect(new Set(completedHooks.map((h) => (h.json as { task_id: string }).task_id)).size).toBe(7);
});
