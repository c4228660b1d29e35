// The pipeline state machine in Postgres (supabase/migrations/20261126093000_pipelines.sql), called as the app calls
// it: which run owns a stage, and that a stage completes exactly once, whatever the duplicates and races.
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

async function create(topic: string, opts: { agent?: string; key?: string; hash?: string } = {}) {
  const { data, error } = await sb.admin.rpc("create_pipeline", {
    p_topic: topic,
    p_report_agent_id: opts.agent ?? "research",
    p_api_key_id: null as unknown as string,
    p_idempotency_key: (opts.key ?? null) as unknown as string,
    p_request_hash: opts.hash ?? "h1",
  });
  if (error) throw Object.assign(new Error(error.message), { code: error.code });
  return data![0]!;
}

async function claim(id: string, stage: string, run: string) {
  const { data, error } = await sb.admin.rpc("start_pipeline_stage", { p_pipeline_id: id, p_stage: stage, p_run_id: run });
  if (error) throw new Error(error.message);
  return data![0]!;
}

async function complete(id: string, stage: string, run: string, text: string) {
  const { data, error } = await sb.admin.rpc("complete_pipeline_stage", {
    p_pipeline_id: id,
    p_stage: stage,
    p_run_id: run,
    p_output: { text },
  });
  if (error) throw new Error(error.message);
  return data;
}

async function fail(id: string, stage: string, reason: string) {
  const { data, error } = await sb.admin.rpc("fail_pipeline_stage", { p_pipeline_id: id, p_stage: stage, p_error: { message: reason }, p_reason: reason });
  if (error) throw new Error(error.message);
  return data;
}

async function taskFor(prompt: string): Promise<string> {
  const [t] = await sql<{ id: string }>(sb.databaseUrl, "insert into public.tasks (agent_id, prompt) values ('research', $1) returning id", [prompt]);
  return t!.id;
}

async function state(id: string) {
  const [p] = await sql<{ status: string; status_reason: string | null; report_task_id: string | null; finished: boolean }>(
    sb.databaseUrl,
    "select status, status_reason, report_task_id, finished_at is not null as finished from public.pipelines where id = $1",
    [id],
  );
  const st = await sql<{ stage: string; status: string; run_id: string | null; attempts: number; output: unknown }>(
    sb.databaseUrl,
    "select stage, status, run_id, attempts, output from public.pipeline_stages where pipeline_id = $1 order by position",
    [id],
  );
  return { ...p!, stages: st };
}

describe("create_pipeline", () => {
  test("records the pipeline with three pending stages; the report stage uses the report agent", async () => {
    const p = await create("topic one", { agent: "content" });
    expect(p.outcome).toBe("created");
    expect(p.status).toBe("queued");
    const s = await state(p.pipeline_id);
    expect(s.stages.map((x) => [x.stage, x.status, x.attempts])).toEqual([
      ["research", "pending", 0],
      ["analyze", "pending", 0],
      ["report", "pending", 0],
    ]);
    const [agents] = await sql<{ a: string[] }>(sb.databaseUrl, "select array_agg(agent_id order by position) a from public.pipeline_stages where pipeline_id = $1", [
      p.pipeline_id,
    ]);
    expect(agents!.a).toEqual(["research", "research", "content"]);
  });

  test("an idempotency key replays the same body and reports a conflict for another; an unknown agent is NSA01", async () => {
    const a = await create("same", { key: "k-1", hash: "h-same" });
    const b = await create("same", { key: "k-1", hash: "h-same" });
    const c = await create("other", { key: "k-1", hash: "h-other" });
    expect([a.outcome, b.outcome, c.outcome]).toEqual(["created", "replayed", "conflict"]);
    expect(new Set([a.pipeline_id, b.pipeline_id, c.pipeline_id]).size).toBe(1);
    await expect(create("x", { agent: "ghostwriter" })).rejects.toMatchObject({ code: "NSA01" });
  });
});

describe("the stage state machine", () => {
  test("one owner per stage; only the owner completes it, once; a finished stage is never claimed again", async () => {
    const { pipeline_id: id } = await create("state machine");
    expect((await claim(id, "analyze", "run-a")).outcome).toBe("not_ready"); // research has not completed

    expect(await claim(id, "research", "run-1")).toMatchObject({ outcome: "started", attempts: 1 });
    expect((await state(id)).status).toBe("running");
    expect((await claim(id, "research", "run-2")).outcome).toBe("busy"); // a duplicated event's run
    expect(await claim(id, "research", "run-1")).toMatchObject({ outcome: "resumed", attempts: 2 }); // the claim step ran again

    const task = await taskFor("research task");
    const { data: attached } = await sb.admin.rpc("set_pipeline_stage_task", { p_pipeline_id: id, p_stage: "research", p_run_id: "run-1", p_task_id: task });
    expect(attached).toBe(task);
    const other = await taskFor("another task");
    const { data: kept } = await sb.admin.rpc("set_pipeline_stage_task", { p_pipeline_id: id, p_stage: "research", p_run_id: "run-1", p_task_id: other });
    expect(kept).toBe(task); // the first task attached stays
    const { error: notOwner } = await sb.admin.rpc("set_pipeline_stage_task", { p_pipeline_id: id, p_stage: "research", p_run_id: "run-2", p_task_id: other });
    expect(notOwner?.code).toBe("NSL01");

    expect(await complete(id, "research", "run-2", "from the duplicate")).toBe(false);
    expect(await complete(id, "research", "run-1", "findings")).toBe(true);
    // The owner's step ran again after a crash: still its completion, and the stored output is not replaced.
    expect(await complete(id, "research", "run-1", "findings, second time")).toBe(true);
    expect((await state(id)).stages[0]).toMatchObject({ status: "completed", output: { text: "findings" } });
    expect((await claim(id, "research", "run-3")).outcome).toBe("finished");
    expect(await fail(id, "research", "too late")).toBe(false);

    expect((await claim(id, "analyze", "run-a")).outcome).toBe("started");
    expect(await complete(id, "analyze", "run-a", "analysis")).toBe(true);
    expect((await claim(id, "report", "run-r")).outcome).toBe("started");
    const reportTask = await taskFor("report task");
    await sb.admin.rpc("set_pipeline_stage_task", { p_pipeline_id: id, p_stage: "report", p_run_id: "run-r", p_task_id: reportTask });
    expect((await state(id)).status).toBe("running");
    expect(await complete(id, "report", "run-r", "the report")).toBe(true);
    expect(await state(id)).toMatchObject({ status: "completed", report_task_id: reportTask, finished: true });
  });

  test("a failed stage fails its pipeline once; later stages cannot start and nothing completes it", async () => {
    const { pipeline_id: id } = await create("failing");
    await claim(id, "research", "run-1");
    await complete(id, "research", "run-1", "findings");
    await claim(id, "analyze", "run-a");
    expect(await fail(id, "analyze", "the analyze task failed: 500")).toBe(true);
    expect(await fail(id, "analyze", "again")).toBe(false);
    expect(await complete(id, "analyze", "run-a", "late")).toBe(false);
    expect(await state(id)).toMatchObject({ status: "failed", status_reason: "the analyze task failed: 500", finished: true });
    expect((await claim(id, "analyze", "run-b")).outcome).toBe("failed");
    expect((await claim(id, "report", "run-r")).outcome).toBe("failed");
  });

  test("of 20 concurrent claims on a pending stage, exactly one starts it", async () => {
    const { pipeline_id: id } = await create("race");
    const outcomes = await Promise.all(Array.from({ length: 20 }, (_, i) => claim(id, "research", `run-${i}`)));
    expect(outcomes.filter((o) => o.outcome === "started")).toHaveLength(1);
    expect(outcomes.filter((o) => o.outcome === "busy")).toHaveLength(19);
    expect((await state(id)).stages[0]!.attempts).toBe(1);
  });

  test("unknown pipelines and stages are refused with NSL01", async () => {
    const { error } = await sb.admin.rpc("start_pipeline_stage", {
      p_pipeline_id: "00000000-0000-4000-8000-000000000000",
      p_stage: "research",
      p_run_id: "r",
    });
    expect(error?.code).toBe("NSL01");
  });
});
