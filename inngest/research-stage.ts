// The research stage with graceful degradation (docs/failures.md). Like the other stages (runStage in
// functions/pipeline-research.ts) it claims the stage, creates the research task and invokes run-task; in addition:
//   research-plan      can research run at all? Not when its model's breaker is open or its agent's budget is spent
//                      today: then, if research on this topic is cached, the stage completes from the freshest copy,
//                      marked `degraded: { reason, cached_at }` on the stage and the pipeline (the analysis and the
//                      report inherit the mark and the report says so in its text)
//   run-research       the task, waited for up to NIGHTSHIFT_RESEARCH_WAIT_HOURS: a task waiting for a dependency
//                      waits, it does not fail
//   research-fallback  the task failed after its retries, or the wait passed its deadline: continue from the cache
//                      if there is one; without one, a deadline-passed task goes to the dead-letter queue (which
//                      replays the pipeline from this stage) and the stage fails
//   cache-research     a fresh result is cached for next time
import { runTask } from "@/inngest/functions/run-task";
import { db } from "@/lib/db/server";
import { fileDeadLetter } from "@/lib/dead-letters";
import type { Json } from "@/lib/db/database.types";
import { claimStage, createStageTask, failStage, PIPELINE_AGENT, storeStageOutput } from "@/lib/pipelines";
import { degradedNote, freshestResearch, researchBlocked, saveResearch } from "@/lib/research-cache";
import type { StageResult, Step } from "./functions/pipeline-research";

export function researchWaitHours(): number {
  const raw = Number(process.env["NIGHTSHIFT_RESEARCH_WAIT_HOURS"] ?? 6);
  return Number.isFinite(raw) && raw > 0 ? Math.min(raw, 71) : 6;
}

/** Completes the research stage from the cache; false when nothing is cached for the topic. */
async function completeFromCache(pipelineId: string, runId: string, reason: string): Promise<{ ok: boolean; cached_at?: string }> {
  const client = db();
  const { data: p, error } = await client.from("pipelines").select("topic").eq("id", pipelineId).single();
  if (error) throw new Error(`pipeline ${pipelineId} read failed: ${error.message}`);
  const cached = await freshestResearch(client, p.topic);
  if (!cached) return { ok: false };
  const degraded = { reason, cached_at: cached.cached_at };
  // The mark goes on first: the analysis and report stages inherit it when they complete (a trigger in Postgres).
  const { error: markError } = await client.from("pipelines").update({ degraded: degraded as unknown as Json }).eq("id", pipelineId);
  if (markError) throw new Error(`could not mark pipeline ${pipelineId} degraded: ${markError.message}`);
  const text = `${degradedNote(degraded)}\n\n${cached.text}`;
  const output = { text: text.slice(0, 30_000), chars: text.length, truncated: text.length > 30_000, partial: false, task_status: "cached", turns: null, cost_micros: 0, sources: cached.sources };
  const { data: done, error: rpcError } = await client.rpc("complete_pipeline_stage", { p_pipeline_id: pipelineId, p_stage: "research", p_run_id: runId, p_output: output as unknown as Json });
  if (rpcError) throw new Error(`complete_pipeline_stage failed: ${rpcError.message}`);
  return { ok: done === true, cached_at: cached.cached_at };
}

export async function runResearchStage(step: Step, runId: string, pipelineId: string): Promise<StageResult> {
  const stage = "research" as const;
  const claim = await step.run(`claim-${stage}`, () => claimStage(db(), pipelineId, stage, runId));
  if (claim.outcome !== "started" && claim.outcome !== "resumed") {
    return { pipeline_id: pipelineId, stage, status: "skipped", reason: `stage ${claim.outcome}` };
  }

  const plan = await step.run("research-plan", async () => {
    // The stage's own agent: a dead-letter replay may have given the stage another one.
    const { data: row } = await db().from("pipeline_stages").select("agent_id").eq("pipeline_id", pipelineId).eq("stage", stage).maybeSingle();
    const blocked = await researchBlocked(db(), row?.agent_id ?? PIPELINE_AGENT);
    if (!blocked) return { degraded: false as const };
    const used = await completeFromCache(pipelineId, runId, blocked);
    return used.ok ? { degraded: true as const, reason: blocked } : { degraded: false as const };
  });
  if (plan.degraded) return { pipeline_id: pipelineId, stage, status: "completed", task_id: null as unknown as string };

  const task = await step.run("create-task", () => createStageTask(db(), pipelineId, stage, runId));
  const hours = researchWaitHours();
  try {
    await step.invoke(`run-${stage}`, { function: runTask, data: { task_id: task.task_id, agent: task.agent }, timeout: `${hours}h` });
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    const timedOut = /timed out waiting for invoked function/i.test(message);
    const reason = timedOut ? `research waited ${hours} h for its dependency without an answer` : `research failed: ${message.slice(0, 300)}`;
    const fallback = await step.run("research-fallback", async () => {
      const used = await completeFromCache(pipelineId, runId, reason);
      if (used.ok) return { ok: true as const };
      if (timedOut) {
        // The task is still waiting for its dependency: it ends failed in the dead-letter queue (its run stops at its
        // next turn), and the entry replays the pipeline from this stage.
        await fileDeadLetter(db(), task.task_id, { name: "TimeoutError", message: `timeouts.finish: the research stage waited ${hours} h for its dependency` }, { stoppedByLimit: true });
      }
      await failStage(db(), pipelineId, stage, { task_id: task.task_id, message: reason }, `the research stage could not run and no research is cached: ${reason}`.slice(0, 2000));
      return { ok: false as const };
    });
    if (fallback.ok) return { pipeline_id: pipelineId, stage, status: "completed", task_id: task.task_id };
    return { pipeline_id: pipelineId, stage, status: "failed", task_id: task.task_id, reason };
  }

  const stored = await step.run(`store-${stage}`, () => storeStageOutput(db(), pipelineId, stage, runId, task.task_id));
  if (!stored.ok) return { pipeline_id: pipelineId, stage, status: "failed", task_id: task.task_id, reason: stored.reason };
  await step.run("cache-research", async () => {
    const [{ data: p }, { data: t }] = await Promise.all([
      db().from("pipelines").select("topic").eq("id", pipelineId).single(),
      db().from("tasks").select("result").eq("id", task.task_id).single(),
    ]);
    const text = (t?.result as { text?: unknown } | null)?.text;
    if (p && typeof text === "string") await saveResearch(db(), { topic: p.topic, text, taskId: task.task_id, pipelineId });
  });
  return { pipeline_id: pipelineId, stage, status: "completed", task_id: task.task_id };
}
