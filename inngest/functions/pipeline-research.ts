// Pipeline stage 1 of 3: research. Started by `pipeline/run.requested`; when its output is stored it emits
// `pipeline/research.completed`, which starts pipeline-analyze. This file also holds the stage driver the three
// stage functions share (one function per file; the driver is the part they have in common).
//
// A stage, as durable steps:
//   claim-<stage>       CAS on the stage row: only the first run for a pending stage goes on. A duplicated event
//                       (another id; the same id is dropped by Inngest) finds the stage busy or finished and stops.
//   create-task         the stage's agent task, prompt built from the previous stage's stored output (idempotent)
//   run-<stage>         step.invoke(run-task): the whole agent loop — turns, tools, budget, approval — as its own run
//   store-<stage>       the task's result becomes the stage output (CAS: once); a task without a result fails the
//                       stage and the pipeline
//   emit-<event>        the next event, with a stable id
// Retry isolation: every stage is a separate run. A failing model call is retried inside the stage's own task run;
// a failing step of a stage is retried inside that stage's run, whose earlier steps are memoized. Earlier stages
// ended long ago and are never called again.
import { inngest } from "@/inngest/client";
import { pipelineResearchCompleted, pipelineResearchCompletedId, pipelineRunRequested } from "@/inngest/events";
import { runTask } from "@/inngest/functions/run-task";
import { runResearchStage } from "@/inngest/research-stage";
import { db } from "@/lib/db/server";
import { claimStage, createStageTask, failStage, STAGE_CONCURRENCY, storeStageOutput, type Stage } from "@/lib/pipelines";

export type Step = Parameters<Parameters<typeof inngest.createFunction>[1]>[0]["step"];

export type StageResult =
  | { pipeline_id: string; stage: Stage; status: "completed"; task_id: string }
  | { pipeline_id: string; stage: Stage; status: "failed"; task_id: string | null; reason: string }
  | { pipeline_id: string; stage: Stage; status: "skipped"; reason: string };

/** Runs one stage of a pipeline (see the header). The caller emits the next event when it completed. */
export async function runStage(step: Step, runId: string, pipelineId: string, stage: Stage): Promise<StageResult> {
  const claim = await step.run(`claim-${stage}`, () => claimStage(db(), pipelineId, stage, runId));
  if (claim.outcome !== "started" && claim.outcome !== "resumed") {
    return { pipeline_id: pipelineId, stage, status: "skipped", reason: `stage ${claim.outcome}` };
  }

  const task = await step.run("create-task", () => createStageTask(db(), pipelineId, stage, runId));

  try {
    await step.invoke(`run-${stage}`, { function: runTask, data: { task_id: task.task_id, agent: task.agent } });
  } catch (err) {
    // The task's run failed after its own retries (its onFailure marks the task failed). Nothing a retry of this
    // stage could fix: the stage and the pipeline fail.
    const reason = `the ${stage} task failed: ${err instanceof Error ? err.message : String(err)}`.slice(0, 2000);
    await step.run(`fail-${stage}`, () => failStage(db(), pipelineId, stage, { task_id: task.task_id, message: reason }, reason));
    return { pipeline_id: pipelineId, stage, status: "failed", task_id: task.task_id, reason };
  }

  const stored = await step.run(`store-${stage}`, () => storeStageOutput(db(), pipelineId, stage, runId, task.task_id));
  if (!stored.ok) return { pipeline_id: pipelineId, stage, status: "failed", task_id: task.task_id, reason: stored.reason };
  return { pipeline_id: pipelineId, stage, status: "completed", task_id: task.task_id };
}

/** onFailure of every stage function: the stage run failed after its retries, so the stage and its pipeline fail. */
export async function markStageFailed(step: Step, pipelineId: string, stage: Stage, error: Error): Promise<void> {
  await step.run("mark-failed", () =>
    failStage(db(), pipelineId, stage, { message: error.message, name: error.name }, `the ${stage} stage failed after its retries: ${error.message}`.slice(0, 2000)),
  );
}

export const pipelineResearch = inngest.createFunction(
  {
    id: "pipeline-research",
    name: "Pipeline: research",
    triggers: [pipelineRunRequested],
    concurrency: { limit: STAGE_CONCURRENCY.research },
    retries: 4,
    onFailure: async ({ event, error, step }) => {
      await markStageFailed(step, (event.data.event.data as { pipeline_id: string }).pipeline_id, "research", error);
    },
  },
  async ({ event, step, runId }) => {
    const pipelineId = event.data.pipeline_id;
    const result = await runResearchStage(step, runId, pipelineId); // runStage plus cached research (research-stage.ts)
    if (result.status === "completed") {
      await step.sendEvent(
        "emit-research-completed",
        pipelineResearchCompleted.create({ pipeline_id: pipelineId, task_id: result.task_id }, { id: pipelineResearchCompletedId(pipelineId) }),
      );
    }
    return result;
  },
);
