// Every Inngest function the app serves.
import { runTask } from "./functions/run-task";
import { pipelineResearch } from "./functions/pipeline-research";
import { pipelineAnalyze } from "./functions/pipeline-analyze";
import { pipelineReport } from "./functions/pipeline-report";
import { deliverNotifications, sweepUndeliveredNotifications } from "./functions/deliver-notifications";
import { taskRunCancelledByInngest } from "./functions/task-run-cancelled";
import { outboxSweeper } from "./functions/outbox-sweeper";
import { deliverTaskCallback } from "./functions/deliver-task-callback";
import { deliverTaskHop } from "./functions/deliver-task-hop";
import { taskRequested } from "./functions/task-requested";
import { dispatchSchedules } from "./functions/dispatch-schedules";
import { morningDigest } from "./functions/morning-digest";

export const functions = [
  runTask,
  taskRunCancelledByInngest,
  pipelineResearch,
  pipelineAnalyze,
  pipelineReport,
  deliverNotifications,
  sweepUndeliveredNotifications,
  outboxSweeper,
  deliverTaskCallback,
  deliverTaskHop,
  taskRequested,
  dispatchSchedules,
  morningDigest,
];
