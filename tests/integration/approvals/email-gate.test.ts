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

/** Polls for the task's end, moving the engine's clock whenever it is quiet (deadlines pass only this way). */
function endedTicking(taskId: string) {
  return until(async () => {
    const { data } = await sb.admin.from("tasks").select("status,status_reason,result").eq("id", taskId).single();
    return data && ["completed", "rejected", "stopped", "failed"].includes(data.status) ? data : undefined;
  }, { message: `task ${taskId} did not end`, tick: quietTick(fx.te.engine, clock, 15_000), timeoutMs: 180_000 });
}

test("no decision by the deadline never sends the email, even when the agent's auto action is approve", async () => {
  // Before, the deadline recorded the email's approval `approved` (the agent's auto action) and the email went out
  // with nobody having looked at it.
  const { error } = await sb.admin.from("agents").update({ approval_auto_action: "approve", approval_timeout_seconds: 60 }).eq("id", "outreach");
  expect(error).toBeNull();
  try {
    const scenario = "gate-timeout-auto-approve";
    const taskId = await outreach(scenario, "Nobody answered.");
    const a = await visibleApproval(taskId, "email_1_1");
    const task = await endedTicking(taskId);
    expect(sentTo(taskId)).toHaveLength(0);
    const { data: row } = await sb.admin.from("approvals").select("status,decided_via").eq("id", a.id).single();
    expect(row).toEqual({ status: "expired", decided_via: "timeout" }); // the console says it was not approved
    expect(toolResultSeen(scenario)).toContain("nobody approved it before the deadline");
    // The final draft still follows the agent's auto action.
    expect(task.status).toBe("completed");
    const { data: n } = await sb.admin.from("notifications").select("body").eq("task_id", taskId).eq("kind", "approval_requested");
    expect(n!.map((x) => x.body).join("\n")).not.toContain("approveed");
  } finally {
    await sb.admin.from("agents").update({ approval_auto_action: "reject", approval_timeout_seconds: 86_400 }).eq("id", "outreach");
  }
}, 300_000);

test("an email too big to review is refused with a tool_result, not a failed task; a big final draft is cut to fit", async () => {
  // "é" × 50,000 is 100 KB: more than approvals.draft holds (64 KB, in bytes). Before, the database refused the draft
  // and the run failed for good (the task dead-lettered); so did a final answer of 60,000 "é".
  const { data: agent } = await sb.admin.from("agents").select("max_tokens").eq("id", "outreach").single();
  await sb.admin.from("agents").update({ max_tokens: 64_000 }).eq("id", "outreach"); // room for a 50,000-char email
  try {
    await tooBig();
  } finally {
    await sb.admin.from("agents").update({ max_tokens: agent!.max_tokens }).eq("id", "outreach");
  }
}, 300_000);

async function tooBig() {
  const scenario = "gate-too-long";
  const big = "é".repeat(50_000);
  double.script(scenario, [{ tool_use: { name: "send_email", input: { ...EMAIL, text: big } } }, { text: "ü".repeat(60_000) }]);
  const { taskId } = await submitTask(sb.admin, { agent: "outreach", prompt: `${scenarioMarker(scenario)} Write to Ada.`, require_approval: true }, null, null);
  const final = await until(async () => {
    const { data: t } = await sb.admin.from("tasks").select("status").eq("id", taskId).single();
    if (t?.status === "failed") return { failed: true as const, error: (await sb.admin.from("tasks").select("error").eq("id", taskId).single()).data?.error };
    const { data } = await sb.admin.from("approvals").select("id,stage,draft").eq("task_id", taskId).not("visible_at", "is", null);
    const d = data?.find((x) => x.stage === "draft");
    return d ? { failed: false as const, ...d } : undefined;
  }, { message: `no draft approval for ${taskId}`, tick: quietTick(fx.te.engine, clock, 15_000), timeoutMs: 120_000 });
  expect(final).toMatchObject({ failed: false });
  if (final.failed) return;
  const { data: stages } = await sb.admin.from("approvals").select("stage").eq("task_id", taskId);
  expect(stages!.map((s) => s.stage)).toEqual(["draft"]); // the email was never put to a reviewer
  expect(toolResultSeen(scenario)).toContain("too long to be reviewed");
  const text = (final.draft as { text: string }).text;
  expect(text.length).toBeGreaterThan(10_000);
  expect(/^ü+$/.test(text)).toBe(true);
  await decideApproval(sb.admin, final.id, { decision: "approve" }, "test", "api");
  const task = await ended(taskId);
  expect(task.status).toBe("completed");
  expect((task.result as { text: string }).text).toHaveLength(60_000); // the answer itself is whole
  expect(sentTo(taskId)).toHaveLength(0);
}
