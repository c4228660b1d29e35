// The dead-letter queue and the circuit breakers in Postgres (supabase/migrations/20261129120100_dead_letters_breakers.sql),
// hammered concurrently on the real database through PostgREST, as every app instance would call them.
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createTestSupabase, type TestSupabase } from "../../support/supabase";
import { sql } from "../db/sql";

let sb: TestSupabase;

beforeAll(async () => {
  sb = await createTestSupabase();
});
afterAll(async () => {
  await sb?.stop();
});

const T0 = Date.parse("2030-03-01T02:00:00Z");
const at = (s: number) => new Date(T0 + s * 1000).toISOString();

async function record(dep: string, o: { success: boolean; outage?: boolean; now: string }) {
  const { data, error } = await sb.admin.rpc("breaker_record", {
    p_dependency: dep,
    p_success: o.success,
    p_outage: o.outage ?? !o.success,
    p_error: o.success ? (null as unknown as string) : "Claude was overloaded (529).",
    p_now: o.now,
    p_threshold: 5,
    p_base_cooldown_seconds: 60,
    p_max_cooldown_seconds: 1800,
  });
  if (error) throw new Error(error.message);
  return data![0]!;
}

async function acquire(dep: string, now: string) {
  const { data, error } = await sb.admin.rpc("breaker_acquire", { p_dependency: dep, p_now: now, p_probe_lease_seconds: 150 });
  if (error) throw new Error(error.message);
  return data![0]!;
}

async function openBreaker(dep: string) {
  for (let i = 0; i < 5; i++) await record(dep, { success: false, now: at(i) });
}

describe("circuit breakers", () => {
  test("of 20 concurrent outage failures, the breaker opens exactly once (at the 5th)", async () => {
    const out = await Promise.all(Array.from({ length: 20 }, () => record("claude:storm", { success: false, now: at(0) })));
    expect(out.filter((r) => r.transition === "opened")).toHaveLength(1);
    const [b] = await sql<{ state: string; consecutive_failures: number; cooldown_seconds: number }>(
      sb.databaseUrl,
      "select state, consecutive_failures, cooldown_seconds from public.breakers where dependency = 'claude:storm'",
    );
    expect(b).toEqual({ state: "open", consecutive_failures: 5, cooldown_seconds: 60 });
  });

  test("failures that are not outages (our 400, a paced 429) and successes do not open it", async () => {
    const dep = "claude:mixed";
    for (let i = 0; i < 4; i++) await record(dep, { success: false, now: at(i) });
    await record(dep, { success: false, outage: false, now: at(5) }); // resets the count
    for (let i = 0; i < 4; i++) expect((await record(dep, { success: false, now: at(6 + i) })).transition).toBe("none");
    await record(dep, { success: true, now: at(20) });
    for (let i = 0; i < 4; i++) expect((await record(dep, { success: false, now: at(21 + i) })).transition).toBe("none");
    expect((await acquire(dep, at(30))).role).toBe("call");
  });

  test("while open, callers are refused with the next probe time; after it exactly one of 20 concurrent callers probes", async () => {
    const dep = "claude:probe";
    await openBreaker(dep);
    const early = await acquire(dep, at(30));
    expect(early.role).toBe("refused");
    expect(new Date(early.retry_at!).toISOString()).toBe(at(4 + 60));

    const callers = await Promise.all(Array.from({ length: 20 }, () => acquire(dep, at(70))));
    expect(callers.filter((c) => c.role === "probe")).toHaveLength(1);
    expect(callers.filter((c) => c.role === "refused")).toHaveLength(19);
    // A probe that never reports back is replaced after its lease, by one caller.
    const late = await Promise.all(Array.from({ length: 10 }, () => acquire(dep, at(70 + 151))));
    expect(late.filter((c) => c.role === "probe")).toHaveLength(1);
  });

  test("a failed probe re-opens with a doubled cool-down, capped at 30 minutes; a successful one closes it once", async () => {
    const dep = "claude:cooldown";
    await openBreaker(dep);
    let now = 4;
    const cooldowns: number[] = [];
    for (let i = 0; i < 7; i++) {
      const { retry_at } = await acquire(dep, at(now));
      now = (Date.parse(retry_at!) - T0) / 1000;
      expect((await acquire(dep, at(now))).role).toBe("probe");
      const r = await record(dep, { success: false, now: at(now) });
      expect(r.transition).toBe("reopened");
      cooldowns.push(r.cooldown_seconds);
    }
    expect(cooldowns).toEqual([120, 240, 480, 960, 1800, 1800, 1800]);

    const { retry_at } = await acquire(dep, at(now));
    now = (Date.parse(retry_at!) - T0) / 1000;
    expect((await acquire(dep, at(now))).role).toBe("probe");
    const closes = await Promise.all(Array.from({ length: 10 }, () => record(dep, { success: true, now: at(now + 1) })));
    expect(closes.filter((c) => c.transition === "closed")).toHaveLength(1);
    expect((await acquire(dep, at(now + 2))).role).toBe("call");
    const [b] = await sql<{ state: string; consecutive_failures: number; cooldown_seconds: number; opened_at: null }>(
      sb.databaseUrl,
      "select state, consecutive_failures, cooldown_seconds, opened_at from public.breakers where dependency = $1",
      [dep],
    );
    expect(b).toEqual({ state: "closed", consecutive_failures: 0, cooldown_seconds: 0, opened_at: null });
  });
});

async function failingTask(prompt: string): Promise<string> {
  const [t] = await sql<{ id: string }>(sb.databaseUrl, "insert into public.tasks (agent_id, prompt, status, cost_micros) values ('research', $1, 'running', 1234) returning id", [prompt]);
  await sql(sb.databaseUrl, "insert into public.task_steps (task_id, step_id, kind, status, detail) values ($1, 'turn-1', 'model', 'completed', '{}'), ($1, 'turn-2', 'model', 'failed', '{\"error\":\"Claude API 529: Overloaded\"}')", [t!.id]);
  return t!.id;
}

async function fileDL(taskId: string) {
  const { data, error } = await sb.admin.rpc("fail_task_dead_letter", {
    p_task_id: taskId,
    p_failure_kind: "provider_down",
    p_summary: "Claude was overloaded (529) and did not recover within the retries.",
    p_error: { kind: "provider_down", message: "Claude was overloaded (529) and did not recover within the retries." },
    p_reason: "Claude was overloaded (529) and did not recover within the retries. Gave up after 5 attempts.",
    p_attempts: 5,
  });
  if (error) throw new Error(error.message);
  return data![0]!;
}

async function replay(id: string, key: string | null, opts: { prompt?: string; agent?: string } = {}) {
  const { data, error } = await sb.admin.rpc("replay_dead_letter", {
    p_id: id,
    p_prompt: (opts.prompt ?? null) as unknown as string,
    p_agent_id: (opts.agent ?? null) as unknown as string,
    p_api_key_id: null as unknown as string,
    p_idempotency_key: key as unknown as string,
    p_actor: "test",
  });
  if (error) throw Object.assign(new Error(error.message), { code: error.code });
  return data![0]!;
}

describe("dead letters", () => {
  test("a task failed by 10 concurrent handlers is failed once and lands once, with its cost, failed step and timeline", async () => {
    const taskId = await failingTask("fails twice");
    const out = await Promise.all(Array.from({ length: 10 }, () => fileDL(taskId)));
    expect(out.filter((o) => o.outcome === "failed")).toHaveLength(1);
    expect(out.filter((o) => o.outcome === "already_ended")).toHaveLength(9);
    const rows = await sql<{ failed_step: string; cost_micros: string; attempts: number; steps: number; status: string }>(
      sb.databaseUrl,
      "select failed_step, cost_micros, attempts, jsonb_array_length(last_steps) as steps, status from public.dead_letters where task_id = $1",
      [taskId],
    );
    expect(rows).toEqual([{ failed_step: "turn-2", cost_micros: "1234", attempts: 5, steps: 2, status: "pending" }]);
    const [t] = await sql<{ status: string; status_reason: string }>(sb.databaseUrl, "select status, status_reason from public.tasks where id = $1", [taskId]);
    expect(t).toEqual({ status: "failed", status_reason: "Claude was overloaded (529) and did not recover within the retries. Gave up after 5 attempts." });
  });

  test("a task that had ended (cancelled) files nothing", async () => {
    const taskId = await failingTask("cancelled first");
    await sql(sb.databaseUrl, "update public.tasks set status = 'cancelled', finished_at = now() where id = $1", [taskId]);
    expect((await fileDL(taskId)).outcome).toBe("already_ended");
    expect(await sql(sb.databaseUrl, "select 1 from public.dead_letters where task_id = $1", [taskId])).toHaveLength(0);
  });

  test("10 concurrent replays with one Idempotency-Key make one linked task; other replays are told it was replayed", async () => {
    const taskId = await failingTask("replay me");
    const { dead_letter_id: id } = await fileDL(taskId);
    const out = await Promise.all(Array.from({ length: 10 }, () => replay(id!, "key-1", { prompt: "replay me, edited" })));
    expect(out.filter((o) => o.outcome === "replayed")).toHaveLength(1);
    expect(out.filter((o) => o.outcome === "same")).toHaveLength(9);
    expect(new Set(out.map((o) => o.task_id)).size).toBe(1);
    const newTask = out[0]!.task_id!;
    const [t] = await sql<{ prompt: string; replay_of: string; status: string }>(sb.databaseUrl, "select prompt, replay_of, status from public.tasks where id = $1", [newTask]);
    expect(t).toEqual({ prompt: "replay me, edited", replay_of: taskId, status: "queued" });

    const others = await Promise.all([replay(id!, "key-2"), replay(id!, null)]);
    expect(others.map((o) => [o.outcome, o.task_id])).toEqual([
      ["already_replayed", newTask],
      ["already_replayed", newTask],
    ]);
    const { data } = await sb.admin.rpc("discard_dead_letter", { p_id: id!, p_note: "too late", p_actor: "test" });
    expect(data![0]).toEqual({ outcome: "already_replayed", task_id: newTask });
  });

  test("a replay keeps the task's deadline and next hop: mode auto still decides by the deadline, the result still hops", async () => {
    await sql(sb.databaseUrl, "insert into public.peers (name, base_url, source, secret_env_name) values ('replay-peer', 'https://peer.example', 'in', 'REPLAY_PEER_SECRET')");
    const taskId = await failingTask("replay with deadline and hop");
    await sql(sb.databaseUrl, "update public.tasks set mode = 'auto', deadline = '2030-03-01T07:00:00Z', next_hop = 'replay-peer' where id = $1", [taskId]);
    const { dead_letter_id: id } = await fileDL(taskId);
    const r = await replay(id!, null, { prompt: "edited" });
    const [t] = await sql<{ mode: string; deadline: Date; next_hop: string }>(sb.databaseUrl, "select mode, deadline, next_hop from public.tasks where id = $1", [r.task_id]);
    expect({ ...t, deadline: new Date(t!.deadline).toISOString() }).toEqual({ mode: "auto", deadline: "2030-03-01T07:00:00.000Z", next_hop: "replay-peer" });
  });

  test("discard: once of 10 concurrent, then replay is refused as discarded; unknown ids and agents are told apart", async () => {
    const taskId = await failingTask("discard me");
    const { dead_letter_id: id } = await fileDL(taskId);
    const out = await Promise.all(
      Array.from({ length: 10 }, async () => (await sb.admin.rpc("discard_dead_letter", { p_id: id!, p_note: "not needed", p_actor: "test" })).data![0]!.outcome),
    );
    expect(out.filter((o) => o === "discarded")).toHaveLength(1);
    expect(out.filter((o) => o === "already_discarded")).toHaveLength(9);
    expect((await replay(id!, "k")).outcome).toBe("discarded");
    expect((await replay("00000000-0000-4000-8000-000000000000", null)).outcome).toBe("not_found");

    const other = await fileDL(await failingTask("unknown agent"));
    await expect(replay(other.dead_letter_id!, null, { agent: "nobody" })).rejects.toMatchObject({ code: "NSA01" });
    expect((await replay(other.dead_letter_id!, null)).outcome).toBe("replayed");
  });
});
