// The task functions through the real PostgREST and supabase-js with the secret key, as the app calls them:
// round trip, idempotency under concurrency, exactly-once step accounting, and a single finish.
import { createHash, randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import type { Database } from "../../../lib/db/database.types";
import { createTestSupabase, type TestSupabase } from "../../support/supabase";
import { sql } from "./sql";

type CreateTaskArgs = Database["public"]["Functions"]["create_task"]["Args"];

let sb: TestSupabase;
const API_KEY_ID = "tasktest0001";

beforeAll(async () => {
  sb = await createTestSupabase();
  const { error } = await sb.admin.from("api_keys").insert({
    id: API_KEY_ID,
    name: "tasks test",
    key_hash: createHash("sha256").update("ns_tasktest0001_secret").digest("hex"),
  });
  expect(error).toBeNull();
});
afterAll(async () => {
  await sb?.stop();
});

// Optional arguments are passed as null, as the app does; the generated types model every argument as required.
function taskArgs(over: Partial<Record<keyof CreateTaskArgs, unknown>> = {}): CreateTaskArgs {
  return {
    p_agent_id: "research",
    p_prompt: "Summarise the overnight news about Postgres.",
    p_input: { sources: ["https://www.postgresql.org/about/news/"] },
    p_priority: 5,
    p_mode: "now",
    p_require_approval: false,
    p_callback_url: null,
    p_api_key_id: API_KEY_ID,
    p_idempotency_key: null,
    p_request_hash: null,
    ...over,
  } as CreateTaskArgs;
}

async function createTask(over: Partial<Record<keyof CreateTaskArgs, unknown>> = {}) {
  const { data, error } = await sb.admin.rpc("create_task", taskArgs(over));
  expect(error).toBeNull();
  expect(data).toHaveLength(1);
  return data![0]!;
}

describe("tasks through supabase-js (secret key)", () => {
  test("the seeded agents carry the mission's daily budgets in micro-dollars", async () => {
    const { data, error } = await sb.admin.from("agents").select("id, daily_budget_micros, enabled").order("id");
    expect(error).toBeNull();
    expect(data).toEqual([
      { id: "content", daily_budget_micros: 1_000_000, enabled: true },
      { id: "outreach", daily_budget_micros: 1_000_000, enabled: true },
      { id: "research", daily_budget_micros: 2_000_000, enabled: true },
    ]);
  });

  test("a task created by rpc('create_task') reads back whole", async () => {
    const created = await createTask();
    expect(created.outcome).toBe("created");
    expect(created.status).toBe("queued");

    const { data: task, error } = await sb.admin.from("tasks").select("*").eq("id", created.task_id).single();
    expect(error).toBeNull();
    expect(task).toMatchObject({
      id: created.task_id,
      agent_id: "research",
      prompt: "Summarise the overnight news about Postgres.",
      input: { sources: ["https://www.postgresql.org/about/news/"] },
      priority: 5,
      mode: "now",
      status: "queued",
      progress_done: 0,
      progress_total: 10, // the research agent's max_turns
      cost_micros: 0,
      api_key_id: API_KEY_ID,
      result: null,
      error: null,
    });
    expect(new Date(task!.created_at).getTime()).not.toBeNaN();

    const { data: started } = await sb.admin.rpc("start_task", { p_task_id: created.task_id, p_run_id: "run-1" });
    expect(started).toBe(true);
    const { data: finished } = await sb.admin.rpc("finish_task", {
      p_task_id: created.task_id,
      p_status: "completed",
      p_result: { text: "done" },
      p_error: null as never,
      p_reason: null as never,
    });
    expect(finished).toBe(true);
    const { data: after } = await sb.admin.from("tasks").select("status, result, run_id, started_at, finished_at").eq("id", created.task_id).single();
    expect(after).toMatchObject({ status: "completed", result: { text: "done" }, run_id: "run-1" });
    expect(after!.started_at).not.toBeNull();
    expect(after!.finished_at).not.toBeNull();
  });

  test("an unknown agent is refused with the function's own error code", async () => {
    const { error } = await sb.admin.rpc("create_task", taskArgs({ p_agent_id: "nobody" }));
    expect(error?.code).toBe("NSA01");
  });

  test("create_task: 20 concurrent identical requests with one idempotency key create exactly one task", async () => {
    const key = `idem-${randomUUID()}`;
    const results = await Promise.all(
      Array.from({ length: 20 }, () => sb.admin.rpc("create_task", taskArgs({ p_idempotency_key: key, p_request_hash: "hash-a" }))),
    );
    for (const r of results) expect(r.error).toBeNull();
    const rows = results.map((r) => r.data![0]!);
    expect(new Set(rows.map((r) => r.task_id)).size).toBe(1);
    expect(rows.filter((r) => r.outcome === "created")).toHaveLength(1);
    expect(rows.filter((r) => r.outcome === "replayed")).toHaveLength(19);

    const [count] = await sql<{ n: string }>(sb.databaseUrl, "select count(*)::text as n from public.tasks where idempotency_key = $1", [key]);
    expect(count!.n).toBe("1");

    // Same key, different body: the earlier task is reported as a conflict and nothing is created.
    const conflict = await createTask({ p_idempotency_key: key, p_request_hash: "hash-b" });
    expect(conflict).toMatchObject({ outcome: "conflict", task_id: rows[0]!.task_id });
    const [again] = await sql<{ n: string }>(sb.databaseUrl, "select count(*)::text as n from public.tasks where idempotency_key = $1", [key]);
    expect(again!.n).toBe("1");
  });

  test("create_task: idempotency also holds for tasks created without an API key (cron, app events)", async () => {
    const key = `idem-${randomUUID()}`;
    const results = await Promise.all(
      Array.from({ length: 10 }, () =>
        sb.admin.rpc("create_task", taskArgs({ p_api_key_id: null, p_idempotency_key: key, p_request_hash: "h" })),
      ),
    );
    for (const r of results) expect(r.error).toBeNull();
    expect(new Set(results.map((r) => r.data![0]!.task_id)).size).toBe(1);
    const [count] = await sql<{ n: string }>(sb.databaseUrl, "select count(*)::text as n from public.tasks where idempotency_key = $1", [key]);
    expect(count!.n).toBe("1");
  });

  test("record_task_step counts a completed step into progress once, however often it is recorded; cost stays the ledger's", async () => {
    const { task_id } = await createTask();
    const step = (status: string, cost = 1_234) =>
      sb.admin.rpc("record_task_step", {
        p_task_id: task_id,
        p_step_id: "turn-1",
        p_kind: "model",
        p_status: status,
        p_detail: { model: "claude-sonnet-4-5" },
        p_input_tokens: 100,
        p_output_tokens: 50,
        p_cost_micros: cost,
      });
    expect((await step("running")).error).toBeNull();
    expect((await step("completed")).error).toBeNull();
    expect((await step("completed")).error).toBeNull(); // a retried step body records again
    expect((await step("running")).error).toBeNull(); // a late "running" must not reopen it

    const { data: task } = await sb.admin.from("tasks").select("progress_done, cost_micros").eq("id", task_id).single();
    expect(task).toEqual({ progress_done: 1, cost_micros: 0 });
    const { data: steps } = await sb.admin.from("task_steps").select("step_id, status, cost_micros").eq("task_id", task_id);
    expect(steps).toEqual([{ step_id: "turn-1", status: "completed", cost_micros: 1_234 }]);
  });

  test("record_task_step: concurrent completions of one new step count it once; only model turns are progress", async () => {
    const { task_id } = await createTask();
    const results = await Promise.all(
      Array.from({ length: 12 }, () =>
        sb.admin.rpc("record_task_step", {
          p_task_id: task_id,
          p_step_id: "turn-2",
          p_kind: "model",
          p_status: "completed",
          p_detail: null as never,
          p_input_tokens: 0,
          p_output_tokens: 0,
          p_cost_micros: 500,
        }),
      ),
    );
    for (const r of results) expect(r.error).toBeNull();
    const { data: task } = await sb.admin.from("tasks").select("progress_done, cost_micros").eq("id", task_id).single();
    expect(task).toEqual({ progress_done: 1, cost_micros: 0 });
    // A tool call is on the timeline but is not a turn.
    const tool = await sb.admin.rpc("record_task_step", {
      p_task_id: task_id,
      p_step_id: "tool-2-web_fetch",
      p_kind: "tool",
      p_status: "completed",
      p_detail: null as never,
      p_input_tokens: 0,
      p_output_tokens: 0,
      p_cost_micros: 0,
    });
    expect(tool.error).toBeNull();
    const { data: after } = await sb.admin.from("tasks").select("progress_done").eq("id", task_id).single();
    expect(after).toEqual({ progress_done: 1 });
  });

  test("submit_task under concurrency: every call with the live key records its task and event; last_used_at moves once a minute at most; a wrong hash or a revoked key records nothing", async () => {
    const hash = createHash("sha256").update("ns_tasktest0001_secret").digest("hex");
    const submit = (prompt: string, keyHash = hash) =>
      sb.admin.rpc("submit_task", {
        p_key_id: API_KEY_ID, p_key_hash: keyHash, p_agent_id: "research", p_prompt: prompt, p_input: null as never,
        p_priority: 0, p_mode: null as never, p_require_approval: false, p_callback_url: null as never,
        p_idempotency_key: null as never, p_request_hash: "h",
      });
    const lastUsed = async () =>
      (await sql<{ t: Date | null }>(sb.databaseUrl, "select last_used_at as t from public.api_keys where id = $1", [API_KEY_ID]))[0]!.t;
    await sql(sb.databaseUrl, "update public.api_keys set last_used_at = now() - interval '2 minutes' where id = $1", [API_KEY_ID]);
    const stale = (await lastUsed())!;

    const tag = randomUUID();
    const results = await Promise.all(Array.from({ length: 24 }, (_, i) => submit(`${tag} ${i}`)));
    for (const r of results) {
      expect(r.error).toBeNull();
      expect(r.data?.[0]?.outcome).toBe("created");
    }
    const ids = results.map((r) => r.data![0]!.task_id);
    const rows = await sql<{ n: string; events: string }>(
      sb.databaseUrl,
      `select count(*) as n, (select count(*) from public.outbox o where o.event_id = any($2::text[])) as events
         from public.tasks t where t.prompt like $1`,
      [`${tag} %`, ids.map((id) => `task-run-${id}`)],
    );
    expect(rows[0]).toEqual({ n: "24", events: "24" });
    const moved = (await lastUsed())!;
    expect(moved.getTime()).toBeGreaterThan(stale.getTime() + 60_000);
    // Used less than a minute ago (here: a time no clock reaches during the test), it stays where it is.
    await sql(sb.databaseUrl, "update public.api_keys set last_used_at = now() + interval '1 hour' where id = $1", [API_KEY_ID]);
    const recent = (await lastUsed())!;
    expect((await submit(`${tag} again`)).data?.[0]?.outcome).toBe("created");
    expect((await lastUsed())!.getTime()).toBe(recent.getTime());

    // A wrong hash, then a revoked key: 'unauthorized', nothing recorded, last_used_at untouched.
    expect((await submit(`${tag} forged`, "0".repeat(64))).data?.[0]?.outcome).toBe("unauthorized");
    await sql(sb.databaseUrl, "update public.api_keys set revoked_at = now(), last_used_at = now() - interval '2 minutes' where id = $1", [API_KEY_ID]);
    try {
      const before = await lastUsed();
      const refused = await Promise.all(Array.from({ length: 6 }, (_, i) => submit(`${tag} revoked ${i}`)));
      for (const r of refused) expect(r.data?.[0]).toMatchObject({ outcome: "unauthorized", task_id: null });
      const left = await sql<{ n: string }>(sb.databaseUrl, "select count(*) as n from public.tasks where prompt like $1", [`${tag} forged%`]);
      const leftRevoked = await sql<{ n: string }>(sb.databaseUrl, "select count(*) as n from public.tasks where prompt like $1", [`${tag} revoked%`]);
      expect([left[0]!.n, leftRevoked[0]!.n]).toEqual(["0", "0"]);
      expect((await lastUsed())!.getTime()).toBe(before!.getTime());
    } finally {
      await sql(sb.databaseUrl, "update public.api_keys set revoked_at = null where id = $1", [API_KEY_ID]);
    }
  });

  test("finish_task transitions once: of concurrent finishers exactly one wins", async () => {
    const { task_id } = await createTask();
    await sb.admin.rpc("start_task", { p_task_id: task_id, p_run_id: "run-x" });
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        sb.admin.rpc("finish_task", {
          p_task_id: task_id,
          p_status: i % 2 ? "failed" : "completed",
          p_result: { finisher: i },
          p_error: (i % 2 ? { message: "boom" } : null) as never,
          p_reason: null as never,
        }),
      ),
    );
    for (const r of results) expect(r.error).toBeNull();
    const winners = results.map((r, i) => (r.data === true ? i : -1)).filter((i) => i >= 0);
    expect(winners).toHaveLength(1);

    const { data: task } = await sb.admin.from("tasks").select("status, result").eq("id", task_id).single();
    expect(task).toEqual({ status: winners[0]! % 2 ? "failed" : "completed", result: { finisher: winners[0] } });

    // A finished task is never resurrected by a retried run.
    const { data: restarted } = await sb.admin.rpc("start_task", { p_task_id: task_id, p_run_id: "run-y" });
    expect(restarted).toBe(false);
    const { error } = await sb.admin.rpc("finish_task", {
      p_task_id: task_id,
      p_status: "running",
      p_result: null as never,
      p_error: null as never,
      p_reason: null as never,
    });
    expect(error?.code).toBe("22023");
  });
});
