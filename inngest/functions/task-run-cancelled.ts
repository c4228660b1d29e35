// When Inngest cancels a run of run-task on its own — `timeouts.finish` ran out, or someone cancelled the run in
// Inngest's dashboard — nothing in the run is left to end its task (onFailure runs for failures only). This
// function does. A run stopped by its time limit is a failure: the task ends `failed` and lands in the dead-letter
// queue (fail_task_dead_letter). Any other cancellation ends it `cancelled` with the reason (cancel_task). Both give
// back what it held. A cancellation that came from POST /api/tasks/:id/cancel already ended the task; then this
// changes nothing. Either way the end is announced (task/run.finished, once per task by its event id), which
// delivers the callback.
import { announceEnd } from "@/inngest/announce-end";
import { inngest } from "@/inngest/client";
import { db } from "@/lib/db/server";
import { cancelOpenBatches } from "@/lib/agents/batch-turn";
import { fileDeadLetter } from "@/lib/dead-letters";
import { cancelTask } from "@/lib/tasks/cancel";

export const taskRunCancelledByInngest = inngest.createFunction(
  {
    id: "task-run-cancelled",
    name: "End a task whose run was cancelled",
    triggers: [{ event: "inngest/function.cancelled", if: "event.data.function_id == 'nightshift-run-task'" }],
    retries: 4,
  },
  async ({ event, step }) => {
    const data = event.data as { event?: { data?: { task_id?: string } }; error?: { message?: string } };
    const taskId = data.event?.data?.task_id;
    if (!taskId) return { skipped: "no task id in the cancelled run's event" };
    const message = data.error?.message ?? "no reason given";
    if (/timeouts\.(finish|start)/.test(message)) {
      const outcome = await step.run("fail-task", async () => {
        await cancelOpenBatches(db(), taskId);
        const filed = await fileDeadLetter(db(), taskId, { name: "TimeoutError", message }, { stoppedByLimit: true });
        return { failed: filed !== null };
      });
      await announceEnd(step, taskId);
      return outcome;
    }
    const reason = `the run was cancelled: ${message}`.slice(0, 500);
    const outcome = await step.run("cancel-task", () => cancelTask(db(), taskId, reason, "system:inngest"));
    await announceEnd(step, taskId);
    return outcome;
  },
);
