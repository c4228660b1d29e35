// Per-agent concurrency slots, hammered concurrently on the real database through supabase-js.
import { afterAll, beforeAll, expect, test } from "vitest";
import { createTestSupabase, type TestSupabase } from "../../support/supabase";

let sb: TestSupabase;

beforeAll(async () => {
  sb = await createTestSupabase();
  await sb.admin.from("agents").update({ concurrency: 3 }).eq("id", "research");
});
afterAll(async () => {
  await sb?.stop();
});

async function tasks(n: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const { data, error } = await sb.admin.rpc("create_task", {
      p_agent_id: "research",
      p_prompt: `slot ${i}`,
      p_input: null as never,
      p_priority: 0,
      p_mode: "now",
      p_require_approval: false,
      p_callback_url: null as never,
      p_api_key_id: null as never,
      p_idempotency_key: null as never,
      p_request_hash: `h${i}`,
    });
    if (error) throw error;
    ids.push(data![0]!.task_id);
  }
  return ids;
}

const acquire = (taskId: string, now?: string) =>
  sb.admin.rpc("acquire_agent_slot", { p_agent_id: "research", p_task_id: taskId, p_lease_seconds: 60, ...(now ? { p_now: now } : {}) });

test("20 tasks racing for 3 slots: exactly 3 get one; renewing keeps it; releasing frees it", async () => {
  const ids = await tasks(20);
  const results = await Promise.all(ids.map((id) => acquire(id)));
  for (const r of results) expect(r.error).toBeNull();
  const winners = ids.filter((_, i) => results[i]!.data![0]!.ok);
  expect(winners).toHaveLength(3);
  const { count } = await sb.admin.from("agent_slots").select("task_id", { count: "exact", head: true }).eq("agent_id", "research");
  expect(count).toBe(3);

  // A holder renews without taking a second slot; a loser still cannot get in.
  expect((await acquire(winners[0]!)).data![0]).toMatchObject({ ok: true, holders: 3, max_concurrency: 3 });
  const loser = ids.find((id) => !winners.includes(id))!;
  expect((await acquire(loser)).data![0]!.ok).toBe(false);

  expect((await sb.admin.rpc("release_agent_slot", { p_task_id: winners[0]! })).data).toBe(true);
  expect((await sb.admin.rpc("release_agent_slot", { p_task_id: winners[0]! })).data).toBe(false);
  expect((await acquire(loser)).data![0]!.ok).toBe(true);
});

test("an expired lease frees its slot (a run that died without releasing)", async () => {
  await sb.admin.from("agent_slots").delete().eq("agent_id", "research");
  const ids = await tasks(4);
  const t0 = Date.now();
  for (const id of ids.slice(0, 3)) expect((await acquire(id, new Date(t0).toISOString())).data![0]!.ok).toBe(true);
  expect((await acquire(ids[3]!, new Date(t0 + 30_000).toISOString())).data![0]!.ok).toBe(false);
  expect((await acquire(ids[3]!, new Date(t0 + 61_000).toISOString())).data![0]!.ok).toBe(true);
});
