// Pipeline stage 3 of 3: the report, written from the stored analysis by the pipeline's report agent (research
// unless the request named another). A `content` report inherits that agent's rule that every draft is approved
// by a human: its task waits for the decision inside the invoked run, and a rejected draft fails the pipeline.
// Started by `pipeline/analysis.completed`; completing it completes the pipeline, emits `pipeline/report.ready`
// and notifies the owner (once per pipeline). The stage driver is in pipeline-research.ts.
import { inngest } from "@/inngest/client";
import { pipelineAnalysisCompleted, pipelineReportReady, pipelineReportReadyId } from "@/inngest/events";
import { db } from "@/lib/db/server";
import { notifyReportReady, STAGE_CONCURRENCY } from "@/lib/pipelines";
import { markStageFailed, runStage } from "./pipeline-research";

export const pipelineReport = inngest.createFunction(
  {
    id: "pipeline-report",
    name: "Pipeline: report",
    triggers: [pipelineAnalysisCompleted],
    concurrency: { limit: STAGE_CONCURRENCY.report },
    retries: 4,
    onFailure: async ({ event, error, step }) => {
      await markStageFailed(step, (event.data.event.data as { pipeline_id: string }).pipeline_id, "report", error);
    },
  },
  async ({ event, step, runId }) => {
    const pipelineId = event.data.pipeline_id;
    const result = await runStage(step, runId, pipelineId, "report");
    if (result.status !== "completed") return result;

    await step.sendEvent(
      "emit-report-ready",
      pipelineReportReady.create({ pipeline_id: pipelineId, report_task_id: result.task_id }, { id: pipelineReportReadyId(pipelineId) }),
    );
    await step.run("notify-owner", async () => {
      const { data, error } = await db().from("pipelines").select("topic,report_task_id").eq("id", pipelineId).single();
      if (error) throw new Error(`pipeline ${pipelineId} read failed: ${error.message}`);
      await notifyReportReady(db(), { pipelineId, topic: data.topic, reportTaskId: data.report_task_id });
    });
    return result;
  },
);
