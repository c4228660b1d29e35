// Pipeline stage 2 of 3: analyze the stored research. Started by `pipeline/research.completed`; emits
// `pipeline/analysis.completed` when its output is stored. The stage driver is in pipeline-research.ts.
import { inngest } from "@/inngest/client";
import { pipelineAnalysisCompleted, pipelineAnalysisCompletedId, pipelineResearchCompleted } from "@/inngest/events";
import { STAGE_CONCURRENCY } from "@/lib/pipelines";
import { markStageFailed, runStage } from "./pipeline-research";

export const pipelineAnalyze = inngest.createFunction(
  {
    id: "pipeline-analyze",
    name: "Pipeline: analyze",
    triggers: [pipelineResearchCompleted],
    concurrency: { limit: STAGE_CONCURRENCY.analyze },
    retries: 4,
    onFailure: async ({ event, error, step }) => {
      await markStageFailed(step, (event.data.event.data as { pipeline_id: string }).pipeline_id, "analyze", error);
    },
  },
  async ({ event, step, runId }) => {
    const pipelineId = event.data.pipeline_id;
    const result = await runStage(step, runId, pipelineId, "analyze");
    if (result.status === "completed") {
      await step.sendEvent(
        "emit-analysis-completed",
        pipelineAnalysisCompleted.create({ pipeline_id: pipelineId, task_id: result.task_id }, { id: pipelineAnalysisCompletedId(pipelineId) }),
      );
    }
    return result;
  },
);
