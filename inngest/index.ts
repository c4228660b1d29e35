// Every Inngest function the app serves.
import { runTask } from "./functions/run-task";
import { pipelineResearch } from "./functions/pipeline-research";
import { pipelineAnalyze } from "./functions/pipeline-analyze";
import { pipelineReport } from "./functions/pipeline-report";
import { deliverNotifications, sweepUndeliveredNotifications } from "./functions/deliver-notifications";

export const functions = [runTask, pipelineResearch, pipelineAnalyze, pipelineReport, deliverNotifications, sweepUndeliveredNotifications];
