// The approval functions in Postgres, through PostgREST and supabase-js as the app calls them: idempotent requests,
// the compare-and-set under concurrency, every outcome of decide_approval, and the auto action applied exactly
// once — with explicit p_now, as the engine's manual clock drives them.
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createTestSupabase, type TestSupabase } from "../../support/supabase";
import { sql } from "../db/sql";

let sb: TestSupabase;
const T0 = Date.parse("2030-01-01T08:00:00Z");
const iso = (ms: number) => new Date(ms).toISOString();
const HOUR = 3_600_000;

beforeAll(async () => {
  sb = await createTestSupabase();
});

afterAll(async () => {
  await sb?.stop();
});

async function newTask(): Promise<string> {
  const { data, error } = await sb.admin.from("tasks").insert({ agent_id: "content", prompt: "draft a post" }).select("id").single();
  if (error) throw error;
  return data.id;
}

async function request(taskId: string, o: { stage?: string; revision?: number; timeout?: number; auto?: string; now?: number } = {}) {
  const { data, error } = await sb.admin.rpc("request_approval", {
    p_task_id: taskId,
    p_stage: o.stage ?? "draft",
    p_revision: o.revision ?? 1,
    p_draft: { text: "hello" },
    p_timeout_seconds: o.timeout ?? 86_400,
    p_auto_action: o.auto ?? "reject",
    p_now: iso(o.now ?? T0),
  });
  if (error) throw error;
  return data;
}

async function publish(id: string, now = T0) {
  const { data, error } = await sb.admin.rpc("publish_approval", { p_id: id, p_now: iso(now) });
  if (error) throw error;
  return data;
}

async function decide(id: string, decision: string, notes: string | null = null, now = T0 + HOUR, via = "api") {
  const { data, error } = await sb.admin.rpc("decide_approval", {
    p_id: id,
    p_decision: decision,
    p_notes: notes,
    p_actor: `tester:${decision}`,
    p_via: via,
    p_now: iso(now),
  } as never);
  if (error) throw error;
  return (data as { outcome: string; status: string; notes: string | null; decided_at: string; decided_via: string; decided_by: string }[])[0]!;
}

async function expire(id: string, now: number) {
  const { data, error } = await sb.admin.rpc("expire_approval", { p_id: id, p_now: iso(now) });
  if (error) throw error;
  return data[0];
}

async function taskStatus(id: string) {
  return (await sb.admin.from("tasks").select("status").eq("id", id).single()).data!.status;
}

async function visible(): Promise<{ taskId: string; id: string }> {
  const taskId = await newTask();
  const a = await request(taskId);
  await publish(a.id);
  return { taskId, id: a.id };
}

describe("request_approval and publish_approval", () => {
  test("records a pending, invisible approval with its deadline and makes the task wait", async () => {
    const taskId = await newTask();
    const a = await request(taskId, { timeout: 3600 });
    expect(a).toMatchObject({ task_id: taskId, stage: "draft", revision: 1, status: "pending", visible_at: null, auto_action: "reject" });
    expect(Date.parse(a.requested_at)).toBe(T0);
    expect(Date.parse(a.expires_at)).toBe(T0 + HOUR);
    expect(await taskStatus(taskId)).toBe("waiting_approval");
  });

  test("is idempotent: ten concurrent requests for one (task, stage, revision) make one row, with the first deadline", async () => {
    const taskId = await newTask();
    const rows = await Promise.all(Array.from({ length: 10 }, (_, i) => request(taskId, { now: T0 + i * 1000, timeout: 60 + i })));
    expect(new Set(rows.map((r) => r.id)).size).toBe(1);
    expect(new Set(rows.map((r) => r.expires_at)).size).toBe(1);
    const counted = await sql<{ n: string }>(sb.databaseUrl, "select count(*)::text as n from public.approvals where task_id = $1", [taskId]);
    expect(counted[0]?.n).toBe("1");
    // A new revision is a new approval.
    const r2 = await request(taskId, { revision: 2 });
    expect(r2.id).not.toBe(rows[0]!.id);
  });

  test("publish sets visible_at once", async () => {
    const taskId = await newTask();
    const a = await request(taskId);
    const p1 = await publish(a.id, T0 + 5);
    const p2 = await publish(a.id, T0 + 999);
    expect(Date.parse(p1.visible_at!)).toBe(T0 + 5);
    expect(p2.visible_at).toBe(p1.visible_at);
  });

  test("refuses unknown tasks, finished tasks, bad timeouts and bad stages with their codes", async () => {
    const unknown = await sb.admin.rpc("request_approval", {
      p_task_id: "00000000-0000-4000-8000-000000000bad",
      p_stage: "draft",
      p_revision: 1,
      p_draft: {},
      p_timeout_seconds: 60,
    });
    expect(unknown.error?.code).toBe("NSP01");
    const done = await newTask();
    await sql(sb.databaseUrl, "update public.tasks set status = 'cancelled' where id = $1", [done]);
    const finished = await sb.admin.rpc("request_approval", { p_task_id: done, p_stage: "draft", p_revision: 1, p_draft: {}, p_timeout_seconds: 60 });
    expect(finished.error?.code).toBe("NSP02");
    const t = await newTask();
    const badTimeout = await sb.admin.rpc("request_approval", { p_task_id: t, p_stage: "draft", p_revision: 1, p_draft: {}, p_timeout_seconds: 0 });
    expect(badTimeout.error?.code).toBe("22023");
    const badStage = await sb.admin.rpc("request_approval", { p_task_id: t, p_stage: "Draft 1", p_revision: 1, p_draft: {}, p_timeout_seconds: 60 });
    expect(badStage.error?.code).toBe("23514");
    const big = await sb.admin.rpc("request_approval", {
      p_task_id: t,
      p_stage: "draft",
      p_revision: 1,
      p_draft: { text: "x".repeat(70_000) },
      p_timeout_seconds: 60,
    });
    expect(big.error?.code).toBe("23514");
    expect(await taskStatus(t)).toBe("queued");
  });
});

describe("decide_approval", () => {
  test("decided, then repeat for the same decision and notes, conflict for anything else; the task resumes", async () => {
    const { taskId, id } = await visible();
    expect(await taskStatus(taskId)).toBe("waiting_approval");
    const first = await decide(id, "approve_with_changes", "  shorter  ");
    expect(first).toMatchObject({ outcome: "decided", status: "approved_with_changes", notes: "shorter", decided_via: "api" });
    expect(await taskStatus(taskId)).toBe("running");
    expect(await decide(id, "approve_with_changes", "shorter", T0 + 2 * HOUR)).toMatchObject({
      outcome: "repeat",
      decided_at: first.decided_at,
    });
    expect(await decide(id, "approve_with_changes", "longer")).toMatchObject({ outcome: "conflict", notes: "shorter" });
    expect(await decide(id, "approve")).toMatchObject({ outcome: "conflict", status: "approved_with_changes" });
    expect(await decide(id, "reject", "no")).toMatchObject({ outcome: "conflict", status: "approved_with_changes" });
    // After the deadline a human decision stays what it was: a retry is still a repeat, not "expired".
    expect(await decide(id, "approve_with_changes", "shorter", T0 + 48 * HOUR)).toMatchObject({ outcome: "repeat" });
  });

  test("not_found for an unknown id and for an approval that is not visible yet", async () => {
    expect(await decide("00000000-0000-4000-8000-000000000bad", "approve")).toMatchObject({ outcome: "not_found" });
    const taskId = await newTask();
    const a = await request(taskId);
    expect(await decide(a.id, "approve")).toMatchObject({ outcome: "not_found" });
    expect((await publish(a.id)).status).toBe("pending");
  });

  test("after the deadline, a pending approval takes its auto action at once and the decision is expired", async () => {
    const { taskId, id } = await visible();
    const late = await decide(id, "approve", null, T0 + 24 * HOUR);
    expect(late).toMatchObject({ outcome: "expired", status: "expired", decided_via: "timeout", decided_by: "auto" });
    expect(Date.parse(late.decided_at)).toBe(T0 + 24 * HOUR);
    expect(await taskStatus(taskId)).toBe("running"); // the run ends it rejected when it wakes
    expect(await expire(id, T0 + 25 * HOUR)).toMatchObject({ applied: false, status: "expired" });
    expect(await decide(id, "reject", null, T0 + HOUR)).toMatchObject({ outcome: "expired" });
  });

  test("rejects invalid arguments", async () => {
    const { id } = await visible();
    for (const [decision, notes, via] of [
      ["maybe", null, "api"],
      ["approve_with_changes", null, "api"],
      ["approve_with_changes", "   ", "api"],
      ["approve", null, "timeout"],
      ["approve", null, "email"],
    ] as const) {
      const { error } = await sb.admin.rpc("decide_approval", {
        p_id: id,
        p_decision: decision,
        p_notes: notes,
        p_actor: "x",
        p_via: via,
      } as never);
      expect(error?.code, `${decision}/${via}`).toBe("22023");
    }
  });

  test("20 parallel decisions with mixed answers: exactly one decided, the rest repeat or conflict, per approval", async () => {
    const bodies = [
      ["approve", null],
      ["reject", "no"],
      ["approve_with_changes", "tweak"],
      ["approve", null],
      ["reject", "nope"],
    ] as const;
    for (let round = 0; round < 10; round++) {
      const { id } = await visible();
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) => {
          const [d, n] = bodies[(i + round) % bodies.length]!;
          return decide(id, d, n, T0 + HOUR + i).then((r) => ({ ...r, asked: d, askedNotes: n }));
        }),
      );
      const decided = results.filter((r) => r.outcome === "decided");
      expect(decided, `round ${round}`).toHaveLength(1);
      const w = decided[0]!;
      const [row] = await sql<{ status: string; notes: string | null; decided_at: Date }>(
        sb.databaseUrl,
        "select status, notes, decided_at from public.approvals where id = $1",
        [id],
      );
      expect(row!.status).toBe(w.status);
      for (const r of results) {
        expect(r.status).toBe(w.status);
        expect(r.decided_at).toBe(w.decided_at);
        if (r === w) continue;
        const same = r.asked === w.asked && (r.askedNotes ?? null) === (w.notes ?? null);
        expect(r.outcome).toBe(same ? "repeat" : "conflict");
      }
    }
  });

  test("decisions racing the deadline's auto action: exactly one wins, and everyone reports that one", async () => {
    for (let round = 0; round < 10; round++) {
      const { taskId, id } = await visible();
      const ops = [
        ...Array.from({ length: 6 }, (_, i) => expire(id, T0 + 24 * HOUR + i).then((r) => ({ kind: "expire", applied: r!.applied, status: r!.status }))),
        ...Array.from({ length: 6 }, (_, i) =>
          decide(id, i % 2 ? "approve" : "reject", null, T0 + 24 * HOUR - 1000 + i).then((r) => ({
            kind: "decide",
            applied: r.outcome === "decided",
            status: r.status,
          })),
        ),
      ];
      const results = await Promise.all(ops);
      expect(results.filter((r) => r.applied), `round ${round}`).toHaveLength(1);
      expect(new Set(results.map((r) => r.status)).size).toBe(1);
      expect(await taskStatus(taskId)).toBe("running");
    }
  });

  test("expire_approval before the deadline changes nothing; the auto action 'approve' approves", async () => {
    const taskId = await newTask();
    const a = await request(taskId, { auto: "approve" });
    await publish(a.id);
    expect(await expire(a.id, T0 + 24 * HOUR - 1)).toMatchObject({ applied: false, status: "pending" });
    expect(await expire(a.id, T0 + 24 * HOUR)).toMatchObject({ applied: true, status: "approved", decided_via: "timeout" });
    expect(await expire(a.id, T0 + 30 * HOUR)).toMatchObject({ applied: false, status: "approved" });
    expect(await expire("00000000-0000-4000-8000-000000000bad", T0)).toBeUndefined();
  });

  test("a task with another pending approval keeps waiting until the last one is decided", async () => {
    const taskId = await newTask();
    const a = await request(taskId, { stage: "outline" });
    const b = await request(taskId, { stage: "draft" });
    await publish(a.id);
    await publish(b.id);
    await decide(a.id, "approve");
    expect(await taskStatus(taskId)).toBe("waiting_approval");
    await decide(b.id, "approve");
    expect(await taskStatus(taskId)).toBe("running");
  });

  test("a decided approval does not send its task back to waiting when its request is retried", async () => {
    const { taskId, id } = await visible();
    await decide(id, "approve");
    expect(await taskStatus(taskId)).toBe("running");
    expect((await request(taskId)).status).toBe("approved");
    expect(await taskStatus(taskId)).toBe("running");
  });
});
