// In a task that needs approval, nothing leaves before a person approved it: each send_email call waits for its own
// approval (the email as it would go out), through the app's real run-task, the real SDK over HTTP, the local engine,
// the offline double and a stand-in for Resend. Before, the approval gated only the final answer: the email the model
// asked for (say, because a page or the task's input told it to) had already gone out when the reviewer saw anything.
import { afterAll, beforeAll, expect, test } from "vitest";
import { scenarioMarker, type ClaudeDouble } from "../../../local/claude/server";
import { ManualClock } from "../../../local/engine";
import { startAppFixture, type AppFixture } from "../../support/app-fixture";
import { startCaptureServer, type CaptureServer } from "../../support/capture-server";
import { quietTick, until } from "../../support/engine-harness";
import type { TestSupabase } from "../../support/supabase";

let fx: AppFixture;
let sb: TestSupabase;
let double: ClaudeDouble;
let resend: CaptureServer;
let clock: ManualClock;
let submitTask: typeof import("@/lib/tasks/submit").submitTask;
let decideApproval: typeof import("@/lib/approvals").decideApproval;

// Each test waits for two approvals and the end of a run: generous deadlines for a loaded CI machine (the polls end
// as soon as the outcome is there).

beforeAll(async () => {
  resend = await startCaptureServer(); // answers as Resend's POST /emails does
  clock = new ManualClock(Date.now());
  fx = await startAppFixture({ clock, env: { RESEND_API_KEY: "re_test_key", RESEND_BASE_URL: resend.url } });
  ({ sb, double } = fx);
  ({ submitTask } = await import("@/lib/tasks/submit"));
  ({ decideApproval } = await import("@/lib/approvals"));
});

afterAll(async () => {
  await fx?.stop();
  await resend?.stop();
});

const EMAIL = { to: ["ada@example.com"], subject: "Tonight's note", text: "A short, honest note." };

/** An outreach task that needs approval, whose model sends one email and then answers. */
async function outreach(scenario: string, thenText = "Done.") {
  double.script(scenario, [{ tool_use: { name: "send_email", input: EMAIL } }, { text: thenText }]);
  const { taskId } = await submitTask(sb.admin, { agent: "outreach", prompt: `${scenarioMarker(scenario)} Write to Ada.`, require_approval: true }, null, null);
  return taskId;
}

function visibleApproval(taskId: string, stage: string) {
  return until(async () => {
    const { data } = await sb.admin.from("approvals").select("id,stage,draft,visible_at").eq("task_id", taskId).eq("stage", stage).not("visible_at", "is", null);
    return data?.[0];
  }, { message: `no visible ${stage} approval for ${taskId}`, tick: quietTick(fx.te.engine, clock, 15_000), timeoutMs: 120_000 });
}

const sentTo = (taskId: string) =>
  resend.requests.filter((r) => r.method === "POST" && r.url === "/emails" && (r.headers["idempotency-key"] ?? "").includes(taskId));

async function ended(taskId: string) {
  return until(async () => {
    const { data } = await sb.admin.from("tasks").select("status,status_reason,result").eq("id", taskId).single();
    return data && ["completed", "rejected", "stopped", "failed"].includes(data.status) ? data : undefined;
  }, { message: `task ${taskId} did not end`, timeoutMs: 120_000 });
}

/** The tool_result the model got for its send_email call (in the request of its second turn). */
function toolResultSeen(scenario: string): string {
  const second = double.calls({ scenario, kind: "messages" })[1];
  const body = second?.body as { messages: { role: string; content: unknown }[] } | undefined;
  const blocks = body?.messages.flatMap((m) => (Array.isArray(m.content) ? m.content : [])) as { type: string; content?: unknown }[];
  return JSON.stringify(blocks?.find((b) => b.type === "tool_result")?.content ?? null);
}

test("the email waits for its own approval and is sent once, only after approve; then the answer waits as before", async () => {
  const taskId = await outreach("gate-approve");
  const a = await visibleApproval(taskId, "email_1_1");
  expect((a.draft as { text: string }).text).toBe("To: ada@example.com\nSubject: Tonight's note\n\nA short, honest note.");
  const { data: waiting } = await sb.admin.from("tasks").select("status").eq("id", taskId).single();
  expect(waiting!.status).toBe("waiting_approval");
  expect(sentTo(taskId)).toHaveLength(0); // nothing left before the decision

  expect((await decideApproval(sb.admin, a.id, { decision: "approve" }, "test", "api")).outcome).toBe("decided");
  const final = await visibleApproval(taskId, "draft");
  expect(sentTo(taskId)).toHaveLength(1);
  expect(sentTo(taskId)[0]!.json).toMatchObject({ to: EMAIL.to, subject: EMAIL.subject, text: EMAIL.text });
  await decideApproval(sb.admin, final.id, { decision: "approve" }, "test", "api");
  expect((await ended(taskId)).status).toBe("completed");
  expect(sentTo(taskId)).toHaveLength(1);
}, 300_000);

test("rejected: nothing is sent, and the model is told so with the reviewer's notes", async () => {
  const scenario = "gate-reject";
  const taskId = await outreach(scenario, "Understood, no email.");
  const a = await visibleApproval(taskId, "email_1_1");
  await decideApproval(sb.admin, a.id, { decision: "reject", notes: "Ada asked not to be contacted." }, "test", "api");
  const final = await visibleApproval(taskId, "draft");
  expect(toolResultSeen(scenario)).toContain("NOT sent");
  expect(toolResultSeen(scenario)).toContain("Ada asked not to be contacted.");
  await decideApproval(sb.admin, final.id, { decision: "approve" }, "test", "api");
  expect((await ended(taskId)).status).toBe("completed");
  expect(sentTo(taskId)).toHaveLength(0);
}, 300_000);

test("edit, then approve: the reviewer's email is what goes out", async () => {
  const taskId = await outreach("gate-edit");
  const a = await visibleApproval(taskId, "email_1_1");
  const edited = "To: ada@example.com\nSubject: A note from us\n\nRewritten by a human.";
  await decideApproval(sb.admin, a.id, { decision: "approve", edited_text: edited }, "test", "api");
  const final = await visibleApproval(taskId, "draft");
  expect(sentTo(taskId)).toHaveLength(1);
  expect(sentTo(taskId)[0]!.json).toMatchObject({ to: ["ada@example.com"], subject: "A note from us", text: "Rewritten by a human." });
  await decideApproval(sb.admin, final.id, { decision: "reject" }, "test", "api");
  expect((await ended(taskId)).status).toBe("rejected");
}, 300_000);
