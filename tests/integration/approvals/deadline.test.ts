// Deadlines, on the engine's manual clock: 24 hours pass in milliseconds.
// - The early event: why the decision lives in the database. An `approval/decision.made` sent before the wait is
//   registered is not matched (the engine reproduces Inngest's race) — and yet the run ends with that decision
//   when the deadline passes, because the decision was written first and the function reads it. Exactly once.
// - Timeout: nobody decides; the auto action (reject) applies exactly once and a late decision gets 409 expired.
// - Auto-approve: the configured auto action "approve" completes the task.
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { runReaches, until } from "../../support/engine-harness";
import {
  approvalOf,
  DAY,
  expectCount,
  postDecision,
  startFlow,
  startStack,
  taskRow,
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

interface ErrorBody {
  error: { code: string; message: string; details: { status: string; decided_at: string; decided_via: string; notes: string | null } };
}

describe("the early event", () => {
  test("is not matched by the engine, yet the decision written first ends the run at the deadline — once", async () => {
    const { taskId, runId, hold } = await startFlow(s, { holdRequest: true });
    // request_approval has run; the step is held, so the run has not reported its wait yet.
    await hold!.reached;
    const pending = (await approvalOf(s, taskId))!;
    expect(pending.status).toBe("pending");
    expect(pending.visible_at).toBeNull();
    expect((await s.t.engine.getRun(runId))!.history.some((h) => h.type === "step.waiting")).toBe(false);

    // A design that shows the approval before waiting: it is visible now, and the reviewer is quick.
    const { error } = await s.sb.admin.rpc("publish_approval", { p_id: pending.id, p_now: new Date(s.clock.now()).toISOString() });
    expect(error).toBeNull();
    const early = await s.approvals.decideApproval(
      s.sb.admin,
      pending.id,
      { decision: "approve", notes: "Ship it." },
      "console:early-bird",
      "console",
    );
    expect(early.outcome).toBe("decided");
    // The wake-up is recorded, and relayed to the engine before any wait exists: the hold opens only once the relay
    // has marked it sent (under load the relay's pass can otherwise land after the wait and be matched).
    const { data: wake } = await s.sb.admin.from("outbox").select("event_id").eq("event_id", `approval-decision-${pending.id}`);
    expect(wake).toHaveLength(1);
    await until(
      async () => (await s.sb.admin.from("outbox").select("sent_at").eq("event_id", `approval-decision-${pending.id}`).single()).data?.sent_at,
      { message: "the early wake-up was never relayed" },
    );

    hold!.open();
    const waiting = await runReaches(s.t.engine, runId, "waiting");
    // The wait registered after the event: the engine never matches it (Inngest's early-event race).
    expect(waiting.history.some((h) => h.type === "step.waiting")).toBe(true);
    expect(waiting.history.some((h) => h.type === "wait.matched")).toBe(false);
    expectCount(s, `resumed:${taskId}`, 0);

    // An event-only design would now auto-reject at the deadline. This one reads the database.
    s.clock.advance(DAY + 1000);
    const run = await runReaches(s.t.engine, runId, "completed");
    expect(run.history.some((h) => h.type === "wait.timed_out")).toBe(true);
    expect(run.output).toMatchObject({ status: "completed", approval: "approved" });
    expect(await taskRow(s, taskId)).toMatchObject({ status: "completed" });
    const final = (await approvalOf(s, taskId))!;
    expect(final).toMatchObject({ status: "approved", decided_via: "console", decided_by: "console:early-bird", notes: "Ship it." });
    expectCount(s, `resumed:${taskId}`, 1);
    expectCount(s, `published:${taskId}`, 1);
    expectCount(s, `rejected:${taskId}`, 0);
    expect(s.hooks.outcomes.get(taskId)).toMatchObject({ decision: "approve", decided_via: "console" });
  });
});

describe("the deadline", () => {
  test("with no decision, the task ends rejected exactly once, and a late decision gets 409 expired", async () => {
    const { taskId, runId } = await startFlow(s);
    const approval = await visibleApproval(s, taskId);
    expect(await taskRow(s, taskId)).toMatchObject({ status: "waiting_approval" });
    await runReaches(s.t.engine, runId, "waiting");
    expect(Date.parse(approval.expires_at)).toBe(s.clock.now() + DAY);

    // One second short of the deadline nothing happens.
    s.clock.advance(DAY - 1000);
    expect((await s.t.engine.getRun(runId))?.status).toBe("waiting");
    expect((await approvalOf(s, taskId))?.status).toBe("pending");

    s.clock.advance(2000);
    const run = await runReaches(s.t.engine, runId, "completed");
    expect(run.output).toMatchObject({ status: "rejected", approval: "expired" });
    expect(run.history.filter((h) => h.type === "wait.timed_out")).toHaveLength(1);
    const task = await taskRow(s, taskId);
    expect(task.status).toBe("rejected");
    expect(task.status_reason).toContain("auto-reject");
    const row = (await approvalOf(s, taskId))!;
    expect(row).toMatchObject({ status: "expired", decided_via: "timeout", decided_by: "auto" });
    expectCount(s, `rejected:${taskId}`, 1);
    expectCount(s, `published:${taskId}`, 0);

    // A late decision, through the API: 409, stating what happened.
    const late = await postDecision(s, approval.id, { decision: "approve" });
    expect(late.status).toBe(409);
    const body = (await late.json()) as ErrorBody;
    expect(body.error.code).toBe("expired");
    expect(body.error.message).toContain("expired");
    expect(body.error.details).toMatchObject({ status: "expired", decided_via: "timeout", decided_at: row.decided_at });

    // ... through the console, and the same reject a human would make: still expired, nothing changes.
    const viaConsole = await s.approvals.decideApproval(s.sb.admin, approval.id, { decision: "reject" }, "console:late", "console");
    expect(viaConsole.outcome).toBe("expired");
    // The auto action is not applied a second time, however often the deadline is looked at again.
    const again = await s.approvals.expireApproval(s.sb.admin, approval.id, new Date(s.clock.now() + DAY));
    expect(again).toMatchObject({ applied: false, status: "expired", decided_at: row.decided_at });
    s.clock.advance(DAY);
    expect(await approvalOf(s, taskId)).toEqual(row);
    expect(await taskRow(s, taskId)).toEqual(task);
    expectCount(s, `rejected:${taskId}`, 1);
  });

  test("with auto action approve, the deadline approves and the task completes", async () => {
    const { taskId, runId } = await startFlow(s, { autoAction: "approve" });
    await visibleApproval(s, taskId);
    await runReaches(s.t.engine, runId, "waiting");
    s.clock.advance(DAY + 1000);
    const run = await runReaches(s.t.engine, runId, "completed");
    expect(run.output).toMatchObject({ status: "completed", approval: "approved" });
    expect(await approvalOf(s, taskId)).toMatchObject({ status: "approved", decided_via: "timeout" });
    expect(await taskRow(s, taskId)).toMatchObject({ status: "completed" });
    expectCount(s, `published:${taskId}`, 1);
  });

  test("a decision made before the deadline whose wake-up was lost is honoured at the deadline", async () => {
    const { taskId, runId } = await startFlow(s);
    const approval = await visibleApproval(s, taskId);
    await runReaches(s.t.engine, runId, "waiting");
    // The CAS write alone, as if every attempt to send the event had failed.
    const { data, error } = await s.sb.admin.rpc("decide_approval", {
      p_id: approval.id,
      p_decision: "approve_with_changes",
      p_notes: "Use the second headline.",
      p_actor: "api:lost-event",
      p_via: "api",
      p_now: new Date(s.clock.now() + 60_000).toISOString(),
    });
    expect(error).toBeNull();
    expect(data?.[0]?.outcome).toBe("decided");
    expect((await s.t.engine.getRun(runId))?.status).toBe("waiting");
    s.clock.advance(DAY + 1000);
    const run = await runReaches(s.t.engine, runId, "completed");
    expect(run.output).toMatchObject({ status: "completed", approval: "approved_with_changes" });
    expect(JSON.stringify((await taskRow(s, taskId)).result)).toContain("revised: Use the second headline.");
    expectCount(s, `revised:${taskId}`, 1);
    expectCount(s, `published:${taskId}`, 1);
  });
});

describe("a wake-up without a decision", () => {
  test("(an event some other app sent by hand, even a malformed one) waits again; the real decision then resumes the run", async () => {
    const { taskId, runId } = await startFlow(s);
    const approval = await visibleApproval(s, taskId);
    await runReaches(s.t.engine, runId, "waiting");
    const clockAtStart = s.clock.now();
    // Not through decideApproval: no decision in the database, and a decision value outside the schema.
    await s.inngest.send({ name: "approval/decision.made", data: { approval_id: approval.id, task_id: taskId, decision: "bogus" } });
    // The first wait matched; the run read "pending" and registered wait-2 next to a recheck step.
    const rewaiting = await until(
      async () => {
        const r = await s.t.engine.getRun(runId);
        return r?.status === "waiting" && r.history.some((h) => h.type === "step.waiting" && h.step_name === "approval-draft-1-wait-2")
          ? r
          : undefined;
      },
      { message: "the run did not wait again" },
    );
    expect(rewaiting?.history.some((h) => h.type === "wait.matched" && h.step_name === "approval-draft-1-wait")).toBe(true);
    expect((await approvalOf(s, taskId))?.status).toBe("pending");
    expectCount(s, `resumed:${taskId}`, 0);

    const res = await postDecision(s, approval.id, { decision: "approve" });
    expect(res.status).toBe(200);
    const run = await runReaches(s.t.engine, runId, "completed");
    expect(run.output).toMatchObject({ status: "completed", approval: "approved" });
    const names = run.history.filter((h) => h.type === "step.completed").map((h) => h.step_name);
    expect(names).toEqual(
      expect.arrayContaining(["approval-draft-1-resolve", "approval-draft-1-recheck-2", "approval-draft-1-resolve-2"]),
    );
    expect(s.clock.now()).toBe(clockAtStart);
    expectCount(s, `published:${taskId}`, 1);
  });
});
