// The side-effect ledger on the real database, through PostgREST and supabase-js as the app calls it: concurrent
// duplicates run the effect once, a completed effect is replayed, a failed one is retried, an abandoned claim is
// re-taken only after its lease (on an injected clock), and a reused id with another request is a conflict.
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import {
  requestHash,
  runOnce,
  SideEffectConflictError,
  SideEffectInProgressError,
  sideEffectKey,
} from "../../../lib/side-effects";
import { createTestSupabase, type TestSupabase } from "../../support/supabase";
import { sql } from "../db/sql";

let sb: TestSupabase;
let taskId: string;

beforeAll(async () => {
  sb = await createTestSupabase();
  const { data, error } = await sb.admin.from("tasks").insert({ agent_id: "outreach", prompt: "ledger test" }).select("id").single();
  expect(error).toBeNull();
  taskId = data!.id;
});
afterAll(async () => {
  await sb?.stop();
});

async function ledgerRow(toolUseId: string) {
  const [row] = await sql<{ status: string; attempts: number; result: unknown; request: unknown; error: string | null }>(
    sb.databaseUrl,
    "select status, attempts, result, request, error from public.side_effects where task_id = $1 and tool_use_id = $2",
    [taskId, toolUseId],
  );
  return row;
}

describe("runOnce", () => {
  test("20 concurrent calls for one tool call run the body exactly once; every caller gets its result or in_progress", async () => {
    const toolUseId = `toolu_${randomUUID()}`;
    let runs = 0;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const body = async () => {
      runs++;
      await gate; // hold the claim while the other callers arrive
      return { sent: true, id: "email_1" };
    };
    const call = () =>
      runOnce(sb.admin, { taskId, toolUseId, tool: "send_email", request: { to: ["a@example.com"] } }, body);

    const pending = Array.from({ length: 20 }, call);
    // Every caller but the claimer settles (with in_progress) while the body is held; then let the body finish.
    const deadline = Date.now() + 20_000;
    let settled = 0;
    pending.forEach((p) => p.then(() => settled++, () => settled++));
    while (settled < 19 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(settled).toBe(19);
    expect(runs).toBe(1);
    release();

    const outcomes = await Promise.allSettled(pending);
    expect(runs).toBe(1);
    const ran = outcomes.filter((o) => o.status === "fulfilled");
    const busy = outcomes.filter((o) => o.status === "rejected");
    expect(ran).toHaveLength(1);
    expect(ran[0]!.value).toEqual({ result: { sent: true, id: "email_1" }, replayed: false });
    for (const b of busy) {
      expect(b.reason).toBeInstanceOf(SideEffectInProgressError);
      expect((b.reason as SideEffectInProgressError).retryAfterMs).toBeGreaterThan(0);
    }

    // A retried step afterwards gets the stored result without running the body.
    const again = await Promise.all(Array.from({ length: 20 }, call));
    expect(runs).toBe(1);
    for (const a of again) expect(a).toEqual({ result: { sent: true, id: "email_1" }, replayed: true });
    expect(await ledgerRow(toolUseId)).toMatchObject({ status: "completed", attempts: 1 });
  });

  test("20 concurrent calls with a quick body: one run, the others replay the same result or see in_progress", async () => {
    const toolUseId = `toolu_${randomUUID()}`;
    let runs = 0;
    const outcomes = await Promise.allSettled(
      Array.from({ length: 20 }, () =>
        runOnce(sb.admin, { taskId, toolUseId, tool: "save_artifact", request: { name: "x" } }, async () => {
          runs++;
          return { artifact_id: "a1" };
        }),
      ),
    );
    expect(runs).toBe(1);
    for (const o of outcomes) {
      if (o.status === "fulfilled") expect(o.value.result).toEqual({ artifact_id: "a1" });
      else expect(o.reason).toBeInstanceOf(SideEffectInProgressError);
    }
    expect(outcomes.filter((o) => o.status === "fulfilled" && !o.value.replayed)).toHaveLength(1);
  });

  test("a body that throws releases the claim; the retry runs it again with the same idempotency key", async () => {
    const toolUseId = `toolu_${randomUUID()}`;
    const seen: { key: string; attempt: number }[] = [];
    const call = { taskId, toolUseId, tool: "send_email", request: { to: ["b@example.com"] } };
    await expect(
      runOnce(sb.admin, call, async (c) => {
        seen.push({ key: c.idempotencyKey, attempt: c.attempt });
        throw new Error("provider 503");
      }),
    ).rejects.toThrow("provider 503");
    expect(await ledgerRow(toolUseId)).toMatchObject({ status: "failed", error: "provider 503" });

    const ok = await runOnce(sb.admin, call, async (c) => {
      seen.push({ key: c.idempotencyKey, attempt: c.attempt });
      return { id: "email_2" };
    });
    expect(ok).toEqual({ result: { id: "email_2" }, replayed: false });
    expect(seen).toEqual([
      { key: sideEffectKey(taskId, toolUseId), attempt: 1 },
      { key: sideEffectKey(taskId, toolUseId), attempt: 2 },
    ]);
    expect(await ledgerRow(toolUseId)).toMatchObject({ status: "completed", attempts: 2, error: null });
  });

  test("an abandoned claim (a crashed run) is in_progress until its lease expires, then re-claimed", async () => {
    const toolUseId = `toolu_${randomUUID()}`;
    const t0 = new Date("2030-01-01T00:00:00Z");
    const call = { taskId, toolUseId, tool: "send_email", request: { to: ["c@example.com"] }, leaseSeconds: 60 };
    // The crashed run: claims directly and never completes.
    const { data, error } = await sb.admin.rpc("claim_side_effect", {
      p_task_id: taskId,
      p_tool_use_id: toolUseId,
      p_tool: "send_email",
      p_request_hash: requestHash(call.request),
      p_lease_seconds: 60,
      p_now: t0.toISOString(),
    });
    expect(error).toBeNull();
    expect(data![0]).toMatchObject({ outcome: "claimed", attempts: 1 });

    let runs = 0;
    const body = async () => {
      runs++;
      return { id: "email_3" };
    };
    const within = runOnce(sb.admin, { ...call, now: new Date(t0.getTime() + 59_000) }, body);
    await expect(within).rejects.toBeInstanceOf(SideEffectInProgressError);
    await within.catch((e: SideEffectInProgressError) => expect(e.retryAfterMs).toBe(1000));
    expect(runs).toBe(0);

    const after = await runOnce(sb.admin, { ...call, now: new Date(t0.getTime() + 60_000) }, body);
    expect(after).toEqual({ result: { id: "email_3" }, replayed: false });
    expect(runs).toBe(1);
    expect(await ledgerRow(toolUseId)).toMatchObject({ status: "completed", attempts: 2 });
  });

  test("a stale claimer that completes late does not overwrite the first recorded result", async () => {
    const toolUseId = `toolu_${randomUUID()}`;
    await runOnce(sb.admin, { taskId, toolUseId, tool: "send_email", request: {} }, async () => ({ id: "first" }));
    const { data, error } = await sb.admin.rpc("complete_side_effect", {
      p_task_id: taskId,
      p_tool_use_id: toolUseId,
      p_result: { id: "second" },
    });
    expect(error).toBeNull();
    expect(data).toEqual([{ outcome: "already_completed", result: { id: "first" } }]);
  });

  test("a stale claimer cannot release a claim someone else now holds", async () => {
    const toolUseId = `toolu_${randomUUID()}`;
    const t0 = new Date("2030-01-01T00:00:00Z");
    const claim = async (now: Date) =>
      (
        await sb.admin.rpc("claim_side_effect", {
          p_task_id: taskId,
          p_tool_use_id: toolUseId,
          p_tool: "send_email",
          p_request_hash: requestHash({}),
          p_lease_seconds: 10,
          p_now: now.toISOString(),
        })
      ).data![0]!;
    const stale = await claim(t0);
    const fresh = await claim(new Date(t0.getTime() + 11_000));
    expect(fresh).toMatchObject({ outcome: "claimed", attempts: 2 });
    const released = await sb.admin.rpc("fail_side_effect", {
      p_task_id: taskId,
      p_tool_use_id: toolUseId,
      p_claim_token: stale.claim_token,
      p_error: "stale",
    });
    expect(released.data).toBe(false);
    expect(await ledgerRow(toolUseId)).toMatchObject({ status: "claimed" });
  });

  test("the same tool_use id with a different request is a conflict, never someone else's result", async () => {
    const toolUseId = `toolu_${randomUUID()}`;
    await runOnce(sb.admin, { taskId, toolUseId, tool: "send_email", request: { to: ["d@example.com"] } }, async () => ({ ok: 1 }));
    let ran = false;
    await expect(
      runOnce(sb.admin, { taskId, toolUseId, tool: "send_email", request: { to: ["e@example.com"] } }, async () => {
        ran = true;
        return { ok: 2 };
      }),
    ).rejects.toBeInstanceOf(SideEffectConflictError);
    expect(ran).toBe(false);
  });

  test("the request hash ignores key order", () => {
    expect(requestHash({ a: 1, b: [1, { c: 2, d: 3 }] })).toBe(requestHash({ b: [1, { d: 3, c: 2 }], a: 1 }));
    expect(requestHash({ a: 1 })).not.toBe(requestHash({ a: 2 }));
  });

  test("the audit record is stored with the claim", async () => {
    const toolUseId = `toolu_${randomUUID()}`;
    await runOnce(
      sb.admin,
      { taskId, toolUseId, tool: "send_email", request: { x: 1 }, record: { to: ["f@example.com"], subject: "hi" } },
      async () => ({ ok: true }),
    );
    expect(await ledgerRow(toolUseId)).toMatchObject({ request: { to: ["f@example.com"], subject: "hi" }, result: { ok: true } });
  });
});
