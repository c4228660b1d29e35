// Announces a task's end: `task/run.finished` with the task's terminal status, sent with the task's stable event
// id, so however many paths announce the same end (the run, its onFailure, a cancellation) Inngest keeps one.
// That event also starts the callback delivery (deliver-task-callback).
import type { GetStepTools, Inngest } from "inngest";
import { taskRunFinished, taskRunFinishedId } from "@/inngest/events";
import { db } from "@/lib/db/server";
import { endedTask } from "@/lib/webhooks/task-callback";

type Step = GetStepTools<Inngest.Any>;

export async function announceEnd(step: Step, taskId: string, prefix = ""): Promise<void> {
  const ended = await step.run(`${prefix}ended-task`, () => endedTask(db(), taskId));
  if (!ended) return;
  await step.sendEvent(`${prefix}emit-finished`, taskRunFinished.create(ended, { id: taskRunFinishedId(taskId) }));
}
