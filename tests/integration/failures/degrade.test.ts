// Graceful degradation of the research -> analyze -> report pipeline, through the app's real functions on the local
// engine (manual clock), the real database and the offline double: research that cannot run continues from the
// freshest cached research and the report says so; with no cache it waits, then after its deadline it is a dead letter
// that replays the pipeline from the research stage.
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import type { ClaudeDouble } from "../../../local/claude/server";
import { ManualClock } from "../../../local/engine";
import { startAppFixture, type AppFixture } from "../../support/app-fixture";
import { until } from "../../support/engine-harness";
import type { TestSupabase } from "../../support/supabase";
import { sql } from "../db/sql";

let fx: AppFixture;
let sb: TestSupabase;
let double: ClaudeDouble;
let clock: ManualClock;
let submitPipeline: typeof import("@/lib/pipelines").submitPipeline;
let getPipeline: typeof import("@/lib/pipelines").getPipeline;
let replayDeadLetter: typeof import("@/lib/dead-letters").replayDeadLetter;
let normaliseTopic: typeof import("@/lib/research-cache").normaliseTopic;

beforeAll(async () => {
  clock = new ManualClock(Date.now());
  fx = await startAppFixture({ clock, double: { onEngineClock: true }, env: { NIGHTSHIFT_RESEARCH_WAIT_HOURS: "1" } });
  ({ sb, double } = fx);
  ({ submitPipeline, getPipeline } = await import("@/lib/pipelines"));
  ({ replayDeadLetter } = await import("@/lib/dead-letters"));
  ({ normaliseTopic } = await import("@/lib/research-cache"));
}, 60_000);

afterAll(() => fx?.stop()); // also puts NIGHTSHIFT_RESEARCH_WAIT_HOURS back

const settled = (id: string, tick = () => clock.advance(10_000)) =>
  until(async () => {
    const p = await getPipeline(sb.admin, id);
    return p && (p.status === "completed" || p.status === "failed") ? p : undefined;
  }, { timeoutMs: 90_000, tick, message: `pipeline ${id} did not end` });

describe("a pipeline whose research cannot run", () => {
  test("uses the cached research when Claude's breaker is open, and the report says it plainly", async () => {
    const topic = "Durable execution, for overnight agents!";
    const cachedAt = "2030-01-02T03:04:05.000Z";
    await sql(sb.databaseUrl, "insert into public.research_cache (topic_key, topic, text, sources, cached_at) values ($1, $2, $3, '[\"https://example.com/a\"]', $4)", [
      normaliseTopic("durable execution for overnight AGENTS"),
      topic,
      "Cached findings: checkpoints make long runs survivable.",
      cachedAt,
    ]);
    // Claude is down: 5 outage failures open the model's breaker (its probe is due in 60 s).
    for (let i = 0; i < 5; i++) {
      await sql(sb.databaseUrl, "select * from public.breaker_record('claude:claude-sonnet-4-6', false, true, 'Claude was overloaded (529).', $1, 5, 60, 1800)", [new Date(clock.now()).toISOString()]);
    }
    const { pipelineId } = await submitPipeline(sb.admin, { topic }, null, null);
    const p = await settled(pipelineId);

    expect(p.status).toBe("completed");
    expect(p.degraded).toEqual({ reason: expect.stringMatching(/^claude:claude-sonnet-4-6 is down \(Claude was overloaded \(529\)\)$/), cached_at: "2030-01-02T03:04:05+00:00" });
    expect(p.stages.map((s) => [s.stage, s.degraded !== null])).toEqual([
      ["research", true],
      ["analyze", true],
      ["report", true],
    ]);
    expect(p.stages[0]!.task_id).toBeNull(); // no research task ran
    expect(p.report!.text).toMatch(/^Note: this report was built from cached research of 2030-01-02 \(2030-01-02T03:04:05\+00:00\), because fresh research could not run: claude:claude-sonnet-4-6 is down/);
    // The analysis read the cached findings.
    const firstText = (c: { body?: unknown }) => JSON.stringify((c.body as { messages?: unknown[] } | undefined)?.messages?.[0] ?? "");
    const analyzePrompt = firstText(double.calls((c) => c.kind === "messages" && firstText(c).includes('"text":"Analyze the research findings')).at(-1) ?? {});
    expect(analyzePrompt).toContain("Cached findings: checkpoints make long runs survivable.");
    expect(analyzePrompt).toContain("Note: this was built from cached research of 2030-01-02");
  });

  test("with no cache it waits, then after its deadline it is a dead letter that replays from the research stage", async () => {
    const topic = "A topic nobody researched before";
    double.faults.add({ kind: "outage", duration_ms: 2 * 3_600_000, status: 503 });
    const { pipelineId } = await submitPipeline(sb.admin, { topic }, null, null);

    // It waits for Claude (not fails) ...
    await until(async () => {
      const { data } = await sb.admin.from("tasks").select("status").like("prompt", `%${topic}%`);
      return data?.some((t) => t.status === "waiting_dependency");
    }, { timeoutMs: 60_000, tick: () => clock.advance(20_000), message: "the research task never waited for its dependency" });
    expect((await getPipeline(sb.admin, pipelineId))!.status).toBe("running");

    // ... until the research deadline (1 h here), then fails into the dead-letter queue.
    const failed = await settled(pipelineId, () => clock.advance(5 * 60_000));
    expect(failed.status).toBe("failed");
    expect(failed.status_reason).toMatch(/^the research stage could not run and no research is cached: research waited 1 h/);
    const { data: dl } = await sb.admin.from("dead_letters").select("id,stage,pipeline_id,failure_kind,status,task_id").eq("pipeline_id", pipelineId).single();
    expect(dl).toMatchObject({ stage: "research", failure_kind: "timeout", status: "pending" });

    // Morning: Claude is back; the entry replays the pipeline from research — with the owner's edited prompt and
    // another agent, which the stage honours — and research now runs and is cached.
    double.faults.clear();
    clock.advance(2 * 3_600_000);
    const edited = `Research, briefly and with sources: ${topic}. (edited on replay)`;
    // An unknown agent changes nothing: the entry stays pending and the pipeline failed.
    await expect(replayDeadLetter(sb.admin, dl!.id, { agent: "no-such-agent" }, { apiKeyId: null, idempotencyKey: null, actor: "test" })).rejects.toMatchObject({ status: 400 });
    expect((await getPipeline(sb.admin, pipelineId))!.status).toBe("failed");
    const r = await replayDeadLetter(sb.admin, dl!.id, { prompt: edited, agent: "outreach" }, { apiKeyId: null, idempotencyKey: "replay-pipeline", actor: "test" });
    expect(r).toMatchObject({ taskId: null, pipeline: { id: pipelineId, stage: "research" }, outcome: "replayed" });
    const done = await settled(pipelineId);
    expect(done.status).toBe("completed");
    expect(done.degraded).toBeNull();
    expect(done.stages[0]!.task_id).not.toBe(dl!.task_id);
    const { data: rerun } = await sb.admin.from("tasks").select("agent_id,prompt,status").eq("id", done.stages[0]!.task_id!).single();
    expect(rerun).toEqual({ agent_id: "outreach", prompt: edited, status: "completed" });
    // The later stages build their prompts from the new research as usual, with their own agents.
    const { data: later } = await sb.admin.from("tasks").select("agent_id,prompt").eq("id", done.stages[1]!.task_id!).single();
    expect(later!.agent_id).toBe("research");
    expect(later!.prompt).toContain("Research findings:");
    const { data: cache } = await sb.admin.from("research_cache").select("topic").eq("topic_key", normaliseTopic(topic)).single();
    expect(cache!.topic).toBe(topic);
    await expect(replayDeadLetter(sb.admin, dl!.id, {}, { apiKeyId: null, idempotencyKey: null, actor: "test" })).rejects.toMatchObject({ status: 409 });
  });
});
