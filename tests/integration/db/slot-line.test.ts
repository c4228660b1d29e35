// The agents' slot lines (claim_agent_slot / release_agent_slot_fair), hammered concurrently on the real database:
// the limit holds, a released slot goes to the first in line (priority, then age) with its wake-up in the outbox,
// and a newcomer never takes a slot ahead of a waiter.
import { afterAll, beforeAll, expect, test } from "vitest";
import { createTestSupabase, type TestSupabase } from "../../support/supabase";

let sb: TestSupabase;

beforeAll(async () => {
  sb = await createTestSupabase();
  const { error } = await sb.admin.from("agents").insert({
    id: "liner",
    display_name: "Liner",
    model: "claude-haiku-4-5",
    system_prompt: "x",
    daily_budget_micros: 1_000_000,
    concurrency: 3,
  });
  if (error) throw error;
});
afterAll(async () => {
  await sb?.stop();
});

async function task(i: number, priority = 0): Promise<string> {
  const { data, error } = await sb.admin.rpc("create_task", {
    p_agent_id: "liner",
    p_prompt: `line ${i}`,
    p_input: null as never,
    p_priority: priority,
    p_mode: "now",
    p_require_approval: false,
    p_callback_url: null as never,
    p_api_key_id: null as never,
    p_idempotency_key: null as never,
    p_request_hash: `h${i}`,
  });
  if (error) throw error;
  return data![0]!.task_id;
}

const claim = async (taskId: string) => {
  const { data, error } = await sb.admin.rpc("claim_agent_slot", { p_agent_id: "liner", p_task_id: taskId, p_lease_seconds: 60 });
  if (error) throw error;
  return data![0]!;
};
const release = async (taskId: string) => {
  const { data, error } = await sb.admin.rpc("release_agent_slot_fair", { p_task_id: taskId });
  if (error) throw error;
  return data![0]!.held;
};
const holders = async () => (await sb.admin.from("agent_slots").select("task_id").eq("agent_id", "liner")).data!.map((r) => r.task_id);
const wakes = async (taskId: string) =>
  (await sb.admin.from("outbox").select("event_id,data").eq("name", "agent/slot.released").contains("data", { task_id: taskId })).data!;

test("20 tasks race for 3 slots: 3 hold one, 17 wait in line; each release hands the slot to the first in line, with its wake-up", async () => {
  const ids: string[] = [];
  // Priorities 0, 1, 2, 0, 1, 2 ...: the line is every priority-2 task (oldest first), then priority 1, then 0.
  for (let i = 0; i < 20; i++) ids.push(await task(i, i % 3));
  const results = await Promise.all(ids.map((id) => claim(id)));
  expect(results.filter((r) => r.ok)).toHaveLength(3);
  expect(results.every((r) => r.holders <= 3)).toBe(true);
  const first = await holders();
  const { count } = await sb.admin.from("agent_slot_waiters").select("task_id", { count: "exact", head: true }).eq("agent_id", "liner");
  expect(count).toBe(17);

  const line = ids
    .map((id, i) => ({ id, i, p: i % 3 }))
    .filter((t) => !first.includes(t.id))
    .sort((a, b) => b.p - a.p || a.i - b.i)
    .map((t) => t.id);
  // Release the 3 holders one after another, then every new holder in turn: the slot goes down the line in order.
  const order: string[] = [];
  let current = [...first];
  while (order.length < line.length) {
    const gone = current.shift()!;
    expect(await release(gone)).toBe(true);
    const now = await holders();
    const handed = now.filter((id) => !current.includes(id));
    expect(handed).toHaveLength(1);
    order.push(handed[0]!);
    expect(await wakes(handed[0]!)).toHaveLength(1);
    // The woken task's own claim finds its slot (and renews it).
    expect((await claim(handed[0]!)).ok).toBe(true);
    current = [...current, handed[0]!];
  }
  expect(order).toEqual(line);
  // Nothing left in line: a release now just frees the slot.
  for (const id of current) await release(id);
  expect(await holders()).toEqual([]);
});

test("a newcomer does not jump the line; concurrent releases hand each slot to exactly one waiter", async () => {
  const held = [await task(100), await task(101), await task(102)];
  for (const id of held) expect((await claim(id)).ok).toBe(true);
  const waiting = [await task(103), await task(104), await task(105)];
  for (const id of waiting) expect((await claim(id)).ok).toBe(false);

  // The three releases race; each freed slot goes to a waiter, never twice to one.
  await Promise.all(held.map((id) => release(id)));
  expect((await holders()).sort()).toEqual([...waiting].sort());
  for (const id of waiting) expect(await wakes(id)).toHaveLength(1);

  // Full again; one of them leaves while a newcomer and an older waiter both want the slot: the waiter gets it.
  const older = await task(106);
  expect((await claim(older)).ok).toBe(false);
  const newcomer = await task(107);
  await release(waiting[0]!);
  expect((await claim(newcomer)).ok).toBe(false);
  expect(await holders()).toContain(older);
  expect(await holders()).not.toContain(newcomer);
});

test("a task that joins the line twice at the same instant gets a wake-up for each hand-over (ids never collide)", async () => {
  // One slot. The callers pass the same `p_now` every time, as a run does whose clock is pinned to the time it was
  // woken for: before each place in line had its own ticket, both wake-ups had the id slot-<task>-<that instant>,
  // and the second was dropped as a duplicate (event ids are deduplicated for 24 h) — the task slept until its
  // fallback with the slot free.
  const { error } = await sb.admin.from("agents").insert({ id: "single", display_name: "Single", model: "claude-haiku-4-5", system_prompt: "x", daily_budget_micros: 1_000_000, concurrency: 1 });
  if (error) throw error;
  const at = "2030-01-01T00:00:00Z";
  const t = async (i: number) => {
    const id = await task(200 + i);
    await sb.admin.from("tasks").update({ agent_id: "single" }).eq("id", id);
    return id;
  };
  const claimAt = async (taskId: string) => {
    const { data, error: e } = await sb.admin.rpc("claim_agent_slot", { p_agent_id: "single", p_task_id: taskId, p_lease_seconds: 60, p_now: at });
    if (e) throw e;
    return data![0]!.ok;
  };
  const releaseAt = async (taskId: string) => {
    const { error: e } = await sb.admin.rpc("release_agent_slot_fair", { p_task_id: taskId, p_now: at });
    if (e) throw e;
  };
  const [holder, waiter, second] = [await t(0), await t(1), await t(2)];
  expect(await claimAt(holder)).toBe(true);
  expect(await claimAt(waiter)).toBe(false);
  await releaseAt(holder); // handed to the waiter: wake-up 1
  expect(await wakes(waiter)).toHaveLength(1);
  await releaseAt(waiter); // it gives the slot back before using it (e.g. a dependency went down)
  expect(await claimAt(second)).toBe(true);
  expect(await claimAt(waiter)).toBe(false); // in line again, at the same instant
  await releaseAt(second); // handed to the waiter again: wake-up 2
  const ids = (await wakes(waiter)).map((w) => w.event_id);
  expect(ids).toHaveLength(2);
  expect(new Set(ids).size).toBe(2);
});
