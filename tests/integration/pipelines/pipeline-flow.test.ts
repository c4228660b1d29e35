// Pipelines through the app's real functions (the three stage functions and run-task), served by the real SDK over
// HTTP and run by the local engine, on the real database and the offline Claude double; started through the real
// POST /api/pipelines route. Each stage's model call is told apart by its prompt (research / analyze / report).
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { scenarioMarker, type CallRecord, type ClaudeDouble } from "../../../local/claude/server";
import { ManualClock } from "../../../local/engine";
import { startAppFixture, type AppFixture } from "../../support/app-fixture";
import { until, type TestEngine } from "../../support/engine-harness";
import type { TestSupabase } from "../../support/supabase";
import { sql } from "../db/sql";

let fx: AppFixture;
let sb: TestSupabase;
let double: ClaudeDouble;
let te: TestEngine;
let clock: ManualClock;
let apiKey: string;
let pipelinesRoute: typeof import("@/app/api/pipelines/route");
let pipelineRoute: typeof import("@/app/api/pipelines/[id]/route");
let decideApproval: typeof import("@/lib/approvals").decideApproval;

beforeAll(async () => {
  // The engine's clock starts at the wall clock: the app stamps rows with real time.
  clock = new ManualClock(Date.now());
  fx = await startAppFixture({ clock, env: { NIGHTSHIFT_FETCH_ALLOW: "127.0.0.1" } });
  ({ sb, double, te } = fx);
  const { createApiKey } = await import("@/lib/api-keys");
  ({ decideApproval } = await import("@/lib/approvals"));
  apiKey = (await createApiKey(sb.admin, "pipeline tests")).key;
  pipelinesRoute = await import("@/app/api/pipelines/route");
  pipelineRoute = await import("@/app/api/pipelines/[id]/route");
});

afterAll(() => fx?.stop());

function post(body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return pipelinesRoute.POST(
    new Request("http://localhost:3000/api/pipelines", {
      method: "POST",
      headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json", ...headers },
      body: typeof body === "string" ? body : JSON.stringify(body),
    }),
  );
}

function get(id: string, key: string | null = apiKey): Promise<Response> {
  return pipelineRoute.GET(
    new Request(`http://localhost:3000/api/pipelines/${id}`, { headers: key ? { authorization: `Bearer ${key}` } : {} }),
    { params: Promise.resolve({ id }) },
  );
}

async function start(scenario: string, extra: Record<string, unknown> = {}): Promise<string> {
  const res = await post({ topic: `${scenarioMarker(scenario)} Durable execution engines for AI agents`, ...extra });
  expect(res.status).toBe(202);
  return ((await res.json()) as { pipeline_id: string }).pipeline_id;
}

async function pipeline(id: string) {
  const { data } = await sb.admin.from("pipelines").select("*").eq("id", id).single();
  return data!;
}

async function stages(id: string) {
  const { data } = await sb.admin.from("pipeline_stages").select("*").eq("pipeline_id", id).order("position");
  return data!;
}

const ended = (id: string, tick?: () => void) =>
  until(async () => {
    const p = await pipeline(id);
    return p.status === "completed" || p.status === "failed" ? p : undefined;
  }, { timeoutMs: 45_000, tick, message: `pipeline ${id} did not end` });

/** Which stage a model call belongs to, by the prompt each stage builds (lib/pipelines.ts stagePrompt). */
function stageOf(call: CallRecord): string {
  const body = JSON.stringify(call.body);
  if (body.includes("Write the final report")) return "report";
  if (body.includes("Analyze the research findings")) return "analyze";
  if (body.includes("Research the topic below")) return "research";
  return "?";
}
const modelCalls = (scenario: string) => double.calls({ scenario, kind: "messages" });
const callsOf = (scenario: string, stage: string) => modelCalls(scenario).filter((c) => stageOf(c) === stage);

/** The engine's runs of one stage function for a pipeline (its event carries the pipeline id). */
async function stageRuns(fn: "pipeline-research" | "pipeline-analyze" | "pipeline-report", pipelineId: string) {
  const runs = await te.engine.listRuns({ function_id: `nightshift-${fn}`, limit: 1000 });
  const mine = [];
  for (const r of runs) {
    const d = await te.engine.getRun(r.run_id);
    if ((d?.event as { data?: { pipeline_id?: string } })?.data?.pipeline_id === pipelineId) mine.push(d!);
  }
  return mine.sort((a, b) => Date.parse(a.created_at) - Date.parse(b.created_at));
}
/** The id the event was sent with (the run's own event_id is the engine's internal one). */
const sentId = (run: { event: unknown }) => (run.event as { id?: string }).id;

async function engineEvents(pipelineId: string) {
  return sql<{ name: string; id: string | null; duplicate: boolean }>(
    te.db.url,
    `select name, id, duplicate from inngest_local.events where payload->'data'->>'pipeline_id' = $1 order by seq`,
    [pipelineId],
  );
}

describe("pipeline research -> analyze -> report", () => {
  test("each stage runs once, stores its output, feeds the next stage's prompt; events chain in order; the owner is told", async () => {
    const scenario = "pipe-happy";
    double.script(scenario, [
      { text: "Findings: Inngest, Temporal and Restate all checkpoint steps." },
      { text: "Analysis: step checkpoints are the common core; pricing differs." },
      { text: "Report: adopt step checkpoints; start with Inngest." },
    ]);
    const id = await start(scenario);
    const p = await ended(id);
    expect(p.status).toBe("completed");

    const st = await stages(id);
    expect(st.map((s) => [s.stage, s.status, s.attempts])).toEqual([
      ["research", "completed", 1],
      ["analyze", "completed", 1],
      ["report", "completed", 1],
    ]);
    expect(st.map((s) => (s.output as { text: string }).text)).toEqual([
      "Findings: Inngest, Temporal and Restate all checkpoint steps.",
      "Analysis: step checkpoints are the common core; pricing differs.",
      "Report: adopt step checkpoints; start with Inngest.",
    ]);
    expect(p.report_task_id).toBe(st[2]!.task_id);
    // Each stage's work is an ordinary task, run by the research agent (the default report agent).
    const { data: tasks } = await sb.admin.from("tasks").select("id,agent_id,status,prompt").in("id", st.map((s) => s.task_id!));
    expect(tasks!.map((t) => [t.agent_id, t.status])).toEqual(Array(3).fill(["research", "completed"]));

    // One model call per stage, in order; each prompt carries the previous stage's stored output.
    const calls = modelCalls(scenario);
    expect(calls.map(stageOf)).toEqual(["research", "analyze", "report"]);
    expect(JSON.stringify(calls[1]!.body)).toContain("Findings: Inngest, Temporal and Restate all checkpoint steps.");
    expect(JSON.stringify(calls[2]!.body)).toContain("Analysis: step checkpoints are the common core; pricing differs.");
    expect(JSON.stringify(calls[2]!.body)).not.toContain("Findings: Inngest");

    // The report run goes on after the pipeline completed: it emits report.ready, then notifies.
    const report = await until(async () => {
      const r = await stageRuns("pipeline-report", id);
      return r[0]?.status === "completed" ? r : undefined;
    }, { message: "the report run did not complete" });
    const [research, analyze] = await Promise.all([stageRuns("pipeline-research", id), stageRuns("pipeline-analyze", id)]);
    // The events, in order, each with its stable id; each stage function ran once, on the previous stage's event.
    expect((await engineEvents(id)).filter((e) => e.name.startsWith("pipeline/"))).toEqual([
      { name: "pipeline/run.requested", id: `pipeline-run-${id}`, duplicate: false },
      { name: "pipeline/research.completed", id: `pipeline-${id}-research-completed`, duplicate: false },
      { name: "pipeline/analysis.completed", id: `pipeline-${id}-analysis-completed`, duplicate: false },
      { name: "pipeline/report.ready", id: `pipeline-${id}-report-ready`, duplicate: false },
    ]);
    expect([research.length, analyze.length, report.length]).toEqual([1, 1, 1]);
    expect(sentId(research[0]!)).toBe(`pipeline-run-${id}`);
    expect(sentId(analyze[0]!)).toBe(`pipeline-${id}-research-completed`);
    expect(sentId(report[0]!)).toBe(`pipeline-${id}-analysis-completed`);
    expect(report[0]!.output).toMatchObject({ status: "completed", task_id: st[2]!.task_id });

    // The owner is notified once, with a link to the report.
    const { data: notes } = await sb.admin.from("notifications").select("kind,dedupe_key,task_id").eq("dedupe_key", `report-ready-${id}`);
    expect(notes).toEqual([{ kind: "report_ready", dedupe_key: `report-ready-${id}`, task_id: st[2]!.task_id }]);
  });

  test("each stage is its own function, triggered by the previous stage's event, with its own concurrency limit", async () => {
    const fns = await sql<{ id: string; config: { triggers: { event?: string }[]; concurrency?: unknown } }>(
      te.db.url,
      "select id, config from inngest_local.functions where id like 'nightshift-pipeline-%' and id not like '%-failure' order by id",
    );
    const { STAGE_CONCURRENCY } = await import("@/lib/pipelines");
    expect(
      fns.map((f) => [f.id, f.config.triggers.map((t) => t.event), JSON.stringify(f.config.concurrency)]),
    ).toEqual([
      ["nightshift-pipeline-analyze", ["pipeline/research.completed"], expect.stringContaining(`"limit":${STAGE_CONCURRENCY.analyze}`)],
      ["nightshift-pipeline-report", ["pipeline/analysis.completed"], expect.stringContaining(`"limit":${STAGE_CONCURRENCY.report}`)],
      ["nightshift-pipeline-research", ["pipeline/run.requested"], expect.stringContaining(`"limit":${STAGE_CONCURRENCY.research}`)],
    ]);
  });

  test("a failure in analyze retries analyze only; research ran once", async () => {
    const scenario = "pipe-analyze-500";
    double.script(scenario, [
      { text: "Findings: three engines." },
      { error: { status: 500, message: "overloaded for a moment" } }, // analyze's first model call
      { text: "Analysis: one clear winner." },
      { text: "Report: the winner." },
    ]);
    const id = await start(scenario);
    // The retry waits out its backoff on the engine's clock.
    const p = await ended(id, () => clock.advance(60_000));
    expect(p.status).toBe("completed");

    // Model calls: research once; analyze failed once and succeeded when it tried again; report once.
    expect(modelCalls(scenario).map((c) => [stageOf(c), c.status])).toEqual([
      ["research", 200],
      ["analyze", 500],
      ["analyze", 200],
      ["report", 200],
    ]);
    expect(callsOf(scenario, "research")).toHaveLength(1);

    const st = await stages(id);
    expect(st.map((s) => [s.stage, s.status, s.attempts])).toEqual([
      ["research", "completed", 1],
      ["analyze", "completed", 1],
      ["report", "completed", 1],
    ]);
    expect((st[1]!.output as { text: string }).text).toBe("Analysis: one clear winner.");

    // The retry happened inside analyze's own task run; the research stage's run never saw an error or a retry.
    const [research] = await stageRuns("pipeline-research", id);
    expect((await stageRuns("pipeline-research", id)).length).toBe(1);
    expect(research!.history.filter((h) => /errored|retrying|failed/.test(h.type))).toEqual([]);
    const analyzeTaskRun = (await te.engine.listRuns({ function_id: "nightshift-run-task", limit: 1000 })).find(
      (r) => (r.output as { task_id?: string } | null)?.task_id === st[1]!.task_id,
    );
    const detail = await te.engine.getRun(analyzeTaskRun!.run_id);
    // A 500 is an outage-class failure: the analyze task's run backed off durably (spending no attempt) and ran the
    // turn again, rather than erroring the step.
    expect(detail!.history.filter((h) => h.type === "step.errored")).toEqual([]);
    expect(detail!.history.some((h) => h.step_name === "dependency-sleep-1-1")).toBe(true);
    const researchTaskRuns = (await te.engine.listRuns({ function_id: "nightshift-run-task", limit: 1000 })).filter(
      (r) => (r.output as { task_id?: string } | null)?.task_id === st[0]!.task_id,
    );
    expect(researchTaskRuns).toHaveLength(1);
    expect((await te.engine.getRun(researchTaskRuns[0]!.run_id))!.history.some((h) => h.type === "step.errored")).toBe(false);
    // One task per stage: the retry did not create another.
    const { count } = await sb.admin.from("tasks").select("id", { count: "exact", head: true }).like("idempotency_key", `pipeline-${id}-%`);
    expect(count).toBe(3);
  });

  test("a failing step of the analyze stage itself is retried in analyze's run only; the agent work is not repeated", async () => {
    const scenario = "pipe-analyze-step";
    double.script(scenario, [{ text: "Findings: stored." }, { text: "Analysis: stored on the retry." }, { text: "Report: done." }]);
    // A fault in the database, injected by this test only (installed before the pipeline starts): the first attempt
    // to store analyze's output fails (a sequence, because nextval survives the failed transaction's rollback).
    await sql(
      sb.databaseUrl,
      `create schema if not exists test_faults;
       create sequence test_faults.analyze_store;
       create function test_faults.fail_analyze_store_once() returns trigger language plpgsql security definer as $f$
       begin
         if new.stage = 'analyze' and new.status = 'completed'
            and exists (select 1 from public.pipelines p where p.id = new.pipeline_id and p.topic like '%${scenarioMarker(scenario)}%')
            and nextval('test_faults.analyze_store') = 1 then
           raise exception 'injected fault: the database refused the first store of analyze';
         end if;
         return new;
       end $f$;
       create trigger fail_analyze_store_once before update on public.pipeline_stages
         for each row execute function test_faults.fail_analyze_store_once();`,
    );
    const id = await start(scenario);
    try {
      const p = await ended(id, () => clock.advance(60_000));
      expect(p.status).toBe("completed");
    } finally {
      await sql(sb.databaseUrl, "drop trigger fail_analyze_store_once on public.pipeline_stages; drop schema test_faults cascade");
    }

    const [analyze] = await stageRuns("pipeline-analyze", id);
    const errored = analyze!.history.filter((h) => h.type === "step.errored").map((h) => h.step_name ?? h.step_id);
    expect(errored).toEqual(["store-analyze"]);
    // The memoized steps before it (claim, task, the invoked agent run) did not run again.
    expect(callsOf(scenario, "analyze")).toHaveLength(1);
    expect(callsOf(scenario, "research")).toHaveLength(1);
    expect(callsOf(scenario, "report")).toHaveLength(1);
    const [research] = await stageRuns("pipeline-research", id);
    expect(research!.history.filter((h) => /errored|retrying|failed/.test(h.type))).toEqual([]);
    expect((await stages(id)).map((s) => [s.stage, s.status, s.attempts])).toEqual([
      ["research", "completed", 1],
      ["analyze", "completed", 1],
      ["report", "completed", 1],
    ]);
  });

  test("a duplicated pipeline/research.completed does not run analyze twice", async () => {
    const scenario = "pipe-duplicate";
    double.script(scenario, [
      { text: "Findings: duplicates happen." },
      // Analyze answers slowly, so the first duplicate most likely arrives while analyze is still running.
      { text: "Analysis: claim before work.", latency_ms: 1500 },
      { text: "Report: CAS on the stage row." },
    ]);
    const id = await start(scenario);
    await until(async () => (await stages(id))[1]!.status === "running", { message: "analyze never started" });
    const { task_id: researchTask } = (await stages(id))[0]!;
    // Another app repeats the event with a different id (the same id is dropped by Inngest itself).
    await te.engine.send({ name: "pipeline/research.completed", id: `dup-1-${id}`, data: { pipeline_id: id, task_id: researchTask } });
    await te.engine.send({ name: "pipeline/research.completed", id: `pipeline-${id}-research-completed`, data: { pipeline_id: id, task_id: researchTask } });
    const p = await ended(id);
    expect(p.status).toBe("completed");
    // And once more after everything finished.
    await te.engine.send({ name: "pipeline/research.completed", id: `dup-2-${id}`, data: { pipeline_id: id, task_id: researchTask } });

    const runs = await until(async () => {
      const r = await stageRuns("pipeline-analyze", id);
      return r.length === 3 && r.every((x) => x.status === "completed") ? r : undefined;
    }, { message: "the duplicate analyze runs did not end" });
    const bySentId = new Map(runs.map((r) => [sentId(r), r]));
    expect([...bySentId.keys()].sort()).toEqual([`dup-1-${id}`, `dup-2-${id}`, `pipeline-${id}-research-completed`]);
    expect(bySentId.get(`pipeline-${id}-research-completed`)!.output).toMatchObject({ status: "completed" });
    // The first duplicate found the stage running (or, had it been slower, already finished); the second, finished.
    const dup1 = bySentId.get(`dup-1-${id}`)!.output as { status: string; reason: string };
    expect(dup1.status).toBe("skipped");
    expect(["stage busy", "stage finished"]).toContain(dup1.reason);
    expect(bySentId.get(`dup-2-${id}`)!.output).toMatchObject({ status: "skipped", reason: "stage finished" });
    // The repeat with the original id was dropped by the engine.
    expect((await engineEvents(id)).filter((e) => e.id === `pipeline-${id}-research-completed`).map((e) => e.duplicate)).toEqual([false, true]);

    expect(callsOf(scenario, "analyze")).toHaveLength(1);
    expect(callsOf(scenario, "report")).toHaveLength(1);
    expect((await stages(id)).map((s) => s.attempts)).toEqual([1, 1, 1]);
    expect(await stageRuns("pipeline-report", id)).toHaveLength(1);
    const { count } = await sb.admin.from("tasks").select("id", { count: "exact", head: true }).like("idempotency_key", `pipeline-${id}-%`);
    expect(count).toBe(3);
  });

  test("a stage that fails for good fails the pipeline; research is not re-run and the report never starts", async () => {
    const scenario = "pipe-analyze-down";
    // A refused request (400) fails for good at once; a 5xx would now be an outage that the run waits out behind
    // the Claude breaker instead of failing (docs/failures.md).
    double.script(scenario, [{ text: "Findings: fine." }, { error: { status: 400 }, repeat: 20 }]);
    const id = await start(scenario);
    const p = await ended(id, () => clock.advance(120_000));
    expect(p.status).toBe("failed");
    expect(p.status_reason).toMatch(/^the analyze task failed: /);
    const st = await stages(id);
    expect(st.map((s) => [s.stage, s.status])).toEqual([
      ["research", "completed"],
      ["analyze", "failed"],
      ["report", "pending"],
    ]);
    expect(callsOf(scenario, "research")).toHaveLength(1);
    expect(callsOf(scenario, "analyze")).toHaveLength(1); // a refused request is not retried
    expect(callsOf(scenario, "report")).toHaveLength(0);
    expect(await stageRuns("pipeline-report", id)).toHaveLength(0);
    await until(async () => {
      const { data } = await sb.admin.from("tasks").select("status").eq("id", st[1]!.task_id!).single();
      return data!.status === "failed";
    }, { message: "the analyze task was not marked failed" });
  });

  test("a content report inherits the content agent's approval: it waits for a human, then the pipeline completes", async () => {
    const scenario = "pipe-content";
    double.script(scenario, [{ text: "Findings: x." }, { text: "Analysis: y." }, { text: "Report draft: z." }]);
    const id = await start(scenario, { report_agent: "content" });
    const approval = await until(async () => {
      const st = await stages(id);
      if (!st[2]!.task_id) return undefined;
      const { data } = await sb.admin.from("approvals").select("id").eq("task_id", st[2]!.task_id).not("visible_at", "is", null);
      return data?.[0];
    }, { message: "the report draft never waited for approval" });
    expect((await pipeline(id)).status).toBe("running");
    expect((await stages(id))[2]!.status).toBe("running");
    expect((await decideApproval(sb.admin, approval.id, { decision: "approve" }, "owner", "api")).outcome).toBe("decided");
    const p = await ended(id);
    expect(p.status).toBe("completed");
    const st = await stages(id);
    expect(st[2]!.agent_id).toBe("content");
    expect((st[2]!.output as { text: string }).text).toBe("Report draft: z.");
  });
});

describe("the pipelines API", () => {
  test("POST: 202 with pipeline_id, status_url and Location; GET shows the stages with their tasks and outputs", async () => {
    const scenario = "pipe-api";
    double.script(scenario, [{ text: "Findings for the API." }, { text: "Analysis for the API." }, { text: "Report for the API." }]);
    const res = await post({ topic: `${scenarioMarker(scenario)} API topic` });
    expect(res.status).toBe(202);
    const body = (await res.json()) as { pipeline_id: string; status: string; status_url: string };
    expect(body.status).toBe("queued");
    expect(body.status_url).toBe(`/api/pipelines/${body.pipeline_id}`);
    expect(res.headers.get("location")).toBe(`http://localhost:3000/api/pipelines/${body.pipeline_id}`);

    await ended(body.pipeline_id);
    const g = await get(body.pipeline_id);
    expect(g.status).toBe(200);
    const view = (await g.json()) as {
      status: string;
      report_agent: string;
      report: { task_id: string; text: string };
      stages: { stage: string; status: string; agent: string; task_id: string; task_status: string; attempts: number; output: { summary: string; chars: number } }[];
    };
    expect(view.status).toBe("completed");
    expect(view.report_agent).toBe("research");
    expect(view.stages.map((s) => [s.stage, s.status, s.agent, s.task_status, s.attempts])).toEqual([
      ["research", "completed", "research", "completed", 1],
      ["analyze", "completed", "research", "completed", 1],
      ["report", "completed", "research", "completed", 1],
    ]);
    expect(view.stages.every((s) => /^[0-9a-f-]{36}$/.test(s.task_id))).toBe(true);
    expect(view.stages.map((s) => s.output.summary)).toEqual(["Findings for the API.", "Analysis for the API.", "Report for the API."]);
    expect(view.report).toEqual({ task_id: view.stages[2]!.task_id, text: "Report for the API." });
  });

  test("GET while queued shows three pending stages; an unknown or malformed id is 404", async () => {
    // Recorded but not announced (create_pipeline alone records no outbox event), so it stays queued.
    const { data, error } = await sb.admin.rpc("create_pipeline", {
      p_topic: "never announced",
      p_report_agent_id: "research",
      p_api_key_id: null as never,
      p_idempotency_key: null as never,
      p_request_hash: "never-announced",
    });
    expect(error).toBeNull();
    const p = { pipelineId: data![0]!.pipeline_id };
    const view = (await (await get(p.pipelineId)).json()) as { status: string; report: unknown; stages: { stage: string; status: string; task_id: unknown; output: unknown }[] };
    expect(view.status).toBe("queued");
    expect(view.report).toBeNull();
    expect(view.stages).toEqual([
      expect.objectContaining({ stage: "research", status: "pending", task_id: null, output: null }),
      expect.objectContaining({ stage: "analyze", status: "pending", task_id: null, output: null }),
      expect.objectContaining({ stage: "report", status: "pending", task_id: null, output: null }),
    ]);
    expect((await get("00000000-0000-4000-8000-000000000000")).status).toBe(404);
    const bad = await get("not-a-uuid");
    expect(bad.status).toBe(404);
    expect(((await bad.json()) as { error: { code: string } }).error.code).toBe("not_found");
  });

  test("401 without a key or with a wrong one, on POST and GET; nothing is recorded", async () => {
    const before = (await sb.admin.from("pipelines").select("id", { count: "exact", head: true })).count;
    const noKey = await pipelinesRoute.POST(
      new Request("http://localhost:3000/api/pipelines", { method: "POST", headers: { "content-type": "application/json" }, body: '{"topic":"x"}' }),
    );
    expect(noKey.status).toBe(401);
    expect(((await noKey.json()) as { error: { code: string } }).error.code).toBe("unauthorized");
    const wrong = await post({ topic: "x" }, { authorization: "Bearer ns_aaaaaaaaaaaa_" + "x".repeat(43) });
    expect(wrong.status).toBe(401);
    expect((await get("00000000-0000-4000-8000-000000000000", null)).status).toBe(401);
    expect((await sb.admin.from("pipelines").select("id", { count: "exact", head: true })).count).toBe(before);
  });

  test("400 names the field: missing topic, unknown report_agent, an unknown field, bad JSON", async () => {
    const cases: [unknown, string][] = [
      [{}, "topic"],
      [{ topic: "   " }, "topic"],
      [{ topic: 42 }, "topic"],
      [{ topic: "x", report_agent: "Not An Agent" }, "report_agent"],
      [{ topic: "x", report_agent: "ghostwriter" }, "report_agent"],
      [{ topic: "x", agent: "research" }, "agent"],
    ];
    for (const [body, field] of cases) {
      const res = await post(body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      const err = ((await res.json()) as { error: { code: string; message: string; details: { field: string }[] } }).error;
      expect(err.code).toBe("invalid_request");
      expect(err.details[0]!.field, JSON.stringify(body)).toBe(field);
      expect(err.message).toContain(field);
    }
    const notJson = await post("{topic:");
    expect(notJson.status).toBe(400);
  });

  test("Idempotency-Key: the same request replays the same pipeline; another body with the key is 409", async () => {
    const key = `idem-${Date.now()}`;
    const topic = `${scenarioMarker("pipe-idem")} idempotent topic`;
    double.script("pipe-idem", [{ text: "F." }, { text: "A." }, { text: "R." }]);
    const first = await post({ topic }, { "idempotency-key": key });
    const second = await post({ topic }, { "idempotency-key": key });
    expect(first.status).toBe(202);
    expect(second.status).toBe(202);
    const a = (await first.json()) as { pipeline_id: string };
    const b = (await second.json()) as { pipeline_id: string };
    expect(b.pipeline_id).toBe(a.pipeline_id);
    expect(second.headers.get("idempotent-replayed")).toBe("true");
    const conflict = await post({ topic: "another topic" }, { "idempotency-key": key });
    expect(conflict.status).toBe(409);
    await ended(a.pipeline_id);
    expect(callsOf("pipe-idem", "research")).toHaveLength(1);
  });
});
