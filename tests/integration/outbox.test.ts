// The submission outbox on the real database, the real SDK and the local engine (manual clock): a task and its
// start event are recorded together; the event survives a relay that never ran or could not send, and the sweeper
// cron delivers it; the task then runs exactly once. And the record function under a concurrent hammer.
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { scenarioMarker, type ClaudeDouble } from "../../local/claude/server";
import { startAppFixture, type AppFixture } from "../support/app-fixture";
import { until, type TestEngine } from "../support/engine-harness";
import type { TestSupabase } from "../support/supabase";

let fx: AppFixture;
let sb: TestSupabase;
let double: ClaudeDouble;
let te: TestEngine;
let submitTask: typeof import("@/lib/tasks/submit").submitTask;
let relayOutbox: typeof import("@/inngest/outbox-relay").relayOutbox;

beforeAll(async () => {
  fx = await startAppFixture();
  ({ sb, double, te } = fx);
  ({ submitTask } = await import("@/lib/tasks/submit"));
  ({ relayOutbox } = await import("@/inngest/outbox-relay"));
});

afterAll(() => fx?.stop());

/** The engine's runs of run-task for this task (found by the triggering event's data). */
async function runsOf(taskId: string): Promise<string[]> {
  const ids: string[] = [];
  for (const r of await te.engine.listRuns({ function_id: "nightshift-run-task", limit: 1000 })) {
    const d = await te.engine.getRun(r.run_id);
    if ((d?.event as { data?: { task_id?: string } })?.data?.task_id === taskId) ids.push(r.run_id);
  }
  return ids;
}

async function outboxRow(eventId: string) {
  const { data, error } = await sb.admin.from("outbox").select("*").eq("event_id", eventId).maybeSingle();
  if (error) throw error;
  return data;
}

describe("the outbox", () => {
  test("a task whose event was recorded but never sent (relay failed, process gone) is delivered by the sweeper and runs once", async () => {
    const scenario = "outbox-sweeper";
    double.script(scenario, [{ text: "Delivered late, run once." }]);
    // The request's relay never runs (relay: "none" and nobody calls it): the process "died" after the commit.
    const { taskId } = await submitTask(sb.admin, { agent: "research", prompt: `${scenarioMarker(scenario)} Go.` }, null, null, {
      relay: "none",
    });
    const eventId = `task-run-${taskId}`;
    expect(await outboxRow(eventId)).toMatchObject({ name: "task/run.requested", data: { task_id: taskId, agent: "research" }, sent_at: null });

    // A relay that cannot reach the event API: nothing is lost, the row records why and backs off.
    const failed = await relayOutbox({ db: sb.admin, send: () => Promise.reject(new Error("event API down")) });
    expect(failed).toEqual({ sent: 0, failed: 1 });
    expect(await outboxRow(eventId)).toMatchObject({ sent_at: null, attempts: 1, last_error: "event API down" });
    expect(await runsOf(taskId)).toHaveLength(0);
    const { data: queued } = await sb.admin.from("tasks").select("status").eq("id", taskId).single();
    expect(queued?.status).toBe("queued");

    // The backoff has passed; the next minute's sweeper run sends it.
    await sb.admin.from("outbox").update({ available_at: new Date(0).toISOString() }).eq("event_id", eventId);
    te.clock.advance(61_000);
    await until(async () => (await outboxRow(eventId))?.sent_at, { message: "the sweeper never sent the event", timeoutMs: 30_000 });
    await until(async () => (await sb.admin.from("tasks").select("status").eq("id", taskId).single()).data?.status === "completed", {
      message: "the task never completed",
      timeoutMs: 30_000,
    });
    const sweeps = await te.engine.listRuns({ function_id: "nightshift-outbox-sweeper" });
    expect(sweeps.length).toBeGreaterThanOrEqual(1);

    // A second relay of the same row (a relay that died before marking it sent) is dropped by its event id.
    await sb.admin.from("outbox").update({ sent_at: null, available_at: new Date(0).toISOString() }).eq("event_id", eventId);
    expect((await relayOutbox({ db: sb.admin })).sent).toBeGreaterThanOrEqual(1);
    expect(await runsOf(taskId)).toHaveLength(1);
    expect(double.calls({ scenario, kind: "messages" })).toHaveLength(1);
  });

  test("50 concurrent submissions with one Idempotency-Key: one task, one outbox row; 20 distinct keys: 20 of each", async () => {
    const body = { agent: "research", prompt: "hammer" };
    const results = await Promise.all(Array.from({ length: 50 }, () => submitTask(sb.admin, body, null, "hammer-1", { relay: "none" })));
    const ids = new Set(results.map((r) => r.taskId));
    expect(ids.size).toBe(1);
    expect(results.filter((r) => r.outcome === "created")).toHaveLength(1);
    const [taskId] = [...ids];
    const { count: tasks } = await sb.admin.from("tasks").select("id", { count: "exact", head: true }).eq("idempotency_key", "hammer-1");
    expect(tasks).toBe(1);
    const { count: rows } = await sb.admin.from("outbox").select("id", { count: "exact", head: true }).eq("event_id", `task-run-${taskId}`);
    expect(rows).toBe(1);

    const distinct = await Promise.all(
      Array.from({ length: 20 }, (_, i) => submitTask(sb.admin, { agent: "research", prompt: `d${i}` }, null, `hammer-d${i}`, { relay: "none" })),
    );
    const dIds = distinct.map((r) => `task-run-${r.taskId}`);
    expect(new Set(dIds).size).toBe(20);
    const { count: dRows } = await sb.admin.from("outbox").select("id", { count: "exact", head: true }).in("event_id", dIds);
    expect(dRows).toBe(20);
  });

  test("concurrent relays claim disjoint rows: each pending event is sent by exactly one of them", async () => {
    await sb.admin.from("outbox").update({ sent_at: new Date().toISOString() }).is("sent_at", null);
    const made = await Promise.all(
      Array.from({ length: 30 }, (_, i) => submitTask(sb.admin, { agent: "research", prompt: `r${i}` }, null, `relay-${i}`, { relay: "none" })),
    );
    // An in-memory send: this test is about who sends, not about running 30 tasks.
    const seen: string[] = [];
    const send = async (events: { id: string }[]) => {
      await new Promise((r) => setTimeout(r, 5));
      seen.push(...events.map((e) => e.id));
    };
    const results = await Promise.all(Array.from({ length: 5 }, () => relayOutbox({ db: sb.admin, send, limit: 4 })));
    const expected = made.map((m) => `task-run-${m.taskId}`).sort();
    expect(results.reduce((n, r) => n + r.sent, 0)).toBe(30);
    expect([...seen].sort()).toEqual(expected);
  });

  test("wake-ups recorded behind a burst of new work are claimed first; concurrent relays still take each row once", async () => {
    await sb.admin.from("outbox").update({ sent_at: new Date().toISOString() }).is("sent_at", null);
    const record = async (events: { name: string; data: Record<string, unknown>; id: string }[]) => {
      const { error } = await sb.admin.rpc("outbox_record_many", { p_events: events as never });
      if (error) throw error;
    };
    // 150 events that start new work (a name nothing listens to: this test is about the order), then, later, two
    // wake-ups of runs already under way, then more new work.
    await record(Array.from({ length: 150 }, (_, i) => ({ name: "test/work.requested", data: { i }, id: `burst-${i}` })));
    await record([
      { name: "agent/slot.released", data: { agent_id: "research", task_id: "00000000-0000-4000-8000-000000000001" }, id: "wake-slot" },
      { name: "approval/decision.made", data: { approval_id: "00000000-0000-4000-8000-000000000002" }, id: "wake-decision" },
    ]);
    await record(Array.from({ length: 10 }, (_, i) => ({ name: "test/work.requested", data: { i }, id: `late-${i}` })));
    const batches: string[][] = [];
    const send = async (events: { id: string }[]) => void batches.push(events.map((e) => e.id));
    expect(await relayOutbox({ db: sb.admin, send, limit: 100, maxRounds: 1 })).toEqual({ sent: 100, failed: 0 });
    // The wake-ups lead the first batch; the rest of it is the oldest new work. (Compared as sets: within one of the
    // claim's two queries, UPDATE ... RETURNING gives rows in the plan's order, which need not be the id order.)
    expect(batches[0]!.slice(0, 2).sort()).toEqual(["wake-decision", "wake-slot"]);
    expect(batches[0]!.slice(2).sort()).toEqual(Array.from({ length: 98 }, (_, i) => `burst-${i}`).sort());

    // More wake-ups arrive while five relays drain the rest at once: every row is sent exactly once, and within
    // each claim wake-ups come before new work.
    await record(Array.from({ length: 12 }, (_, i) => ({ name: "agent/slot.released", data: { agent_id: "research", task_id: `w${i}` }, id: `wake-${i}` })));
    batches.length = 0;
    const results = await Promise.all(Array.from({ length: 5 }, () => relayOutbox({ db: sb.admin, send, limit: 7 })));
    expect(results.reduce((n, r) => n + r.sent, 0)).toBe(52 + 10 + 12);
    const sent = batches.flat();
    expect(new Set(sent).size).toBe(sent.length);
    expect(sent.filter((id) => id.startsWith("wake-")).sort()).toEqual(Array.from({ length: 12 }, (_, i) => `wake-${i}`).sort());
    for (const b of batches) {
      const firstNew = b.findIndex((id) => !id.startsWith("wake-"));
      if (firstNew >= 0) expect(b.slice(firstNew).every((id) => !id.startsWith("wake-"))).toBe(true);
    }
  });
});
