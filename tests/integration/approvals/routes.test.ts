// POST/GET /api/approvals/:id through the route handlers, on the real database and engine: competing decisions
// (two tabs, two apps), repeats, access and validation.
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { runReaches } from "../../support/engine-harness";
import {
  approvalOf,
  createTask,
  expectCount,
  getApprovalRoute,
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

interface Ok {
  approval_id: string;
  task_id: string;
  outcome: string;
  status: string;
  notes: string | null;
  decided_by: string;
  decided_at: string;
  decided_via: string;
}
interface Err {
  error: { code: string; message: string; details?: unknown };
}

describe("competing decisions", () => {
  test("two different decisions at once: exactly one 200, the other 409 already_decided stating the outcome", async () => {
    for (let round = 0; round < 5; round++) {
      const { taskId, runId } = await startFlow(s);
      const a = await visibleApproval(s, taskId);
      const [r1, r2] = await Promise.all([
        postDecision(s, a.id, { decision: "approve" }),
        postDecision(s, a.id, { decision: "reject", notes: "Not this one." }),
      ]);
      const statuses = [r1.status, r2.status].sort();
      expect(statuses).toEqual([200, 409]);
      const win = (r1.status === 200 ? await r1.json() : await r2.json()) as Ok;
      const lose = (r1.status === 409 ? await r1.json() : await r2.json()) as Err;
      expect(win.outcome).toBe("decided");
      expect(lose.error.code).toBe("already_decided");
      expect(lose.error.details).toMatchObject({ status: win.status, decided_at: win.decided_at, decided_via: "api" });
      expect(lose.error.message).toContain(win.status);

      const task = await taskEnds(s, taskId);
      expect(task.status).toBe(win.status === "approved" ? "completed" : "rejected");
      await runReaches(s.t.engine, runId, "completed");
      expectCount(s, `resumed:${taskId}`, 1);
      expect(s.hooks.counter.get(`published:${taskId}`) + s.hooks.counter.get(`rejected:${taskId}`)).toBe(1);
    }
  });

  test("the same decision twice: both 200 (decided, then repeat), one resume", async () => {
    const { taskId } = await startFlow(s);
    const a = await visibleApproval(s, taskId);
    const body = { decision: "approve_with_changes", notes: "Add a call to action." };
    const [r1, r2] = await Promise.all([postDecision(s, a.id, body), postDecision(s, a.id, body)]);
    expect([r1.status, r2.status]).toEqual([200, 200]);
    const outcomes = [((await r1.json()) as Ok).outcome, ((await r2.json()) as Ok).outcome].sort();
    expect(outcomes).toEqual(["decided", "repeat"]);
    const task = await taskEnds(s, taskId);
    expect(task.status).toBe("completed");
    expect(JSON.stringify(task.result)).toContain("revised: Add a call to action.");
    // A retry long after is still a repeat.
    const r3 = await postDecision(s, a.id, body);
    expect(r3.status).toBe(200);
    expect(((await r3.json()) as Ok).outcome).toBe("repeat");
    expectCount(s, `revised:${taskId}`, 1);
    expectCount(s, `published:${taskId}`, 1);
  });

  test("the same decision with different notes is a conflict: the second reviewer's text was not stored", async () => {
    const { taskId } = await startFlow(s);
    const a = await visibleApproval(s, taskId);
    expect((await postDecision(s, a.id, { decision: "reject", notes: "Too long." })).status).toBe(200);
    const second = await postDecision(s, a.id, { decision: "reject", notes: "Wrong tone." });
    expect(second.status).toBe(409);
    expect((await second.json()) as Err).toMatchObject({
      error: { code: "already_decided", details: { status: "rejected", notes: "Too long." } },
    });
    expect((await taskEnds(s, taskId)).status).toBe("rejected");
  });
});

describe("the decision's answer and GET", () => {
  test("200 with the approval's final state; GET shows it with the draft", async () => {
    const { taskId } = await startFlow(s);
    const a = await visibleApproval(s, taskId);
    const get1 = await getApprovalRoute(s, a.id);
    expect(get1.status).toBe(200);
    expect(await get1.json()).toMatchObject({
      approval_id: a.id,
      task_id: taskId,
      stage: "draft",
      revision: 1,
      status: "pending",
      draft: { text: `Draft for task ${taskId}` },
      auto_action: "reject",
      expires_at: a.expires_at,
      decided_at: null,
    });
    const res = await postDecision(s, a.id, { decision: "reject", notes: "  Needs sources.  " });
    expect(res.status).toBe(200);
    const body = (await res.json()) as Ok;
    expect(body).toMatchObject({
      approval_id: a.id,
      task_id: taskId,
      outcome: "decided",
      status: "rejected",
      notes: "Needs sources.",
      decided_via: "api",
    });
    expect(body.decided_by).toMatch(/^api:[a-z0-9]{12}$/);
    const task = await taskEnds(s, taskId);
    expect(task).toMatchObject({ status: "rejected", result: { feedback: "Needs sources." } });
    expect(await (await getApprovalRoute(s, a.id)).json()).toMatchObject({ status: "rejected", notes: "Needs sources." });
  });
});

describe("access and validation", () => {
  test("401 without a key or with a bad key, for POST and GET; nothing is decided", async () => {
    const { taskId } = await startFlow(s);
    const a = await visibleApproval(s, taskId);
    for (const res of [
      await postDecision(s, a.id, { decision: "approve" }, null),
      await postDecision(s, a.id, { decision: "approve" }, "ns_aaaaaaaaaaaa_nope"),
      await getApprovalRoute(s, a.id, null),
    ]) {
      expect(res.status).toBe(401);
      expect(((await res.json()) as Err).error.code).toBe("unauthorized");
    }
    expect((await approvalOf(s, taskId))?.status).toBe("pending");
    expect((await postDecision(s, a.id, { decision: "approve" })).status).toBe(200);
    await taskEnds(s, taskId);
  });

  test("404 for an unknown id, a malformed id, and an approval not visible yet", async () => {
    const taskId = await createTask(s);
    const { data: hidden, error } = await s.sb.admin.rpc("request_approval", {
      p_task_id: taskId,
      p_stage: "draft",
      p_revision: 1,
      p_draft: { text: "not yet" },
      p_timeout_seconds: 3600,
    });
    expect(error).toBeNull();
    for (const id of [randomUUID(), "not-a-uuid", "'; drop table approvals; --", hidden!.id]) {
      const post = await postDecision(s, id, { decision: "approve" });
      expect(post.status, id).toBe(404);
      expect(((await post.json()) as Err).error.code).toBe("not_found");
      expect((await getApprovalRoute(s, id)).status, id).toBe(404);
    }
    expect((await s.sb.admin.from("approvals").select("status").eq("id", hidden!.id).single()).data?.status).toBe("pending");
  });

  test.each([
    ["no decision", {}, "decision"],
    ["unknown decision", { decision: "maybe" }, "decision"],
    ["approve_with_changes without notes", { decision: "approve_with_changes" }, "notes"],
    ["approve_with_changes with blank notes", { decision: "approve_with_changes", notes: "   " }, "notes"],
    ["notes not a string", { decision: "reject", notes: 42 }, "notes"],
    ["notes too long", { decision: "reject", notes: "x".repeat(20_001) }, "notes"],
    ["unknown field", { decision: "approve", feedback: "nice" }, "feedback"],
  ])("400 for %s, naming the field", async (_name, body, field) => {
    const { taskId } = await startFlow(s);
    const a = await visibleApproval(s, taskId);
    const res = await postDecision(s, a.id, body);
    expect(res.status).toBe(400);
    const json = (await res.json()) as { error: { code: string; message: string; details: { field: string }[] } };
    expect(json.error.code).toBe("invalid_request");
    expect(json.error.details.map((d) => d.field)).toContain(field);
    expect(json.error.message).toContain(field);
    expect((await approvalOf(s, taskId))?.status).toBe("pending");
    expect((await postDecision(s, a.id, { decision: "reject" })).status).toBe(200);
    await taskEnds(s, taskId);
  });

  test("400 for a body that is not JSON, 415 for another content type", async () => {
    const { taskId } = await startFlow(s);
    const a = await visibleApproval(s, taskId);
    expect((await postDecision(s, a.id, "{nope")).status).toBe(400);
    const res = await s.route.POST(
      new Request(`http://localhost:3000/api/approvals/${a.id}`, {
        method: "POST",
        headers: { authorization: `Bearer ${s.apiKey}`, "content-type": "text/plain" },
        body: "approve",
      }),
      { params: Promise.resolve({ id: a.id }) },
    );
    expect(res.status).toBe(415);
    expect((await postDecision(s, a.id, { decision: "approve" })).status).toBe(200);
    await taskEnds(s, taskId);
  });
});
