// Queues a task: record it, then announce it with `task/run.requested` (event id = the task's, so Inngest
// runs it once). If the announcement fails the row is removed and the client told to retry, so nothing is
// left recorded but never run.
import { inngest } from "@/inngest/client";
import { taskRunRequested, taskRunRequestedId } from "@/inngest/events";
import type { AdminClient } from "@/lib/db/admin";
import { ApiError } from "@/lib/http/errors";
import type { CreateTaskBody } from "./schema";
import { deleteUnannouncedTask, insertTask, type CreatedTask } from "./service";

export async function submitTask(
  db: AdminClient,
  body: CreateTaskBody,
  /** The key the request came with; null for tasks from the console, cron or app events. */
  apiKeyId: string | null,
  idempotencyKey: string | null,
): Promise<CreatedTask> {
  const task = await insertTask(db, body, apiKeyId, idempotencyKey);
  if (task.outcome === "replayed") return task;
  try {
    await inngest.send(
      taskRunRequested.create({ task_id: task.taskId, agent: body.agent }, { id: taskRunRequestedId(task.taskId) }),
    );
  } catch (err) {
    console.error(`[tasks] could not queue task ${task.taskId}:`, err instanceof Error ? err.message : err);
    await deleteUnannouncedTask(db, task.taskId).catch(() => {});
    throw new ApiError(503, "queue_unavailable", "The task queue is unavailable; retry with the same Idempotency-Key", undefined, {
      "Retry-After": "5",
    });
  }
  return task;
}
