// Delivers a finished task's callback (Standard Webhooks, lib/webhooks/outbound.ts). Triggered by
// `task/run.finished`, which every terminal status emits once, so completed, stopped, rejected, failed and
// cancelled tasks all get their one POST. The attempts, backoff and breaker waits are the shared delivery loop
// (inngest/deliver-webhook.ts).
import { deliverWithRetries } from "@/inngest/deliver-webhook";
import { inngest } from "@/inngest/client";
import { taskRunFinished } from "@/inngest/events";
import { db } from "@/lib/db/server";
import { openTaskCallback } from "@/lib/webhooks/task-callback";

export const deliverTaskCallback = inngest.createFunction(
  { id: "deliver-task-callback", name: "Deliver a finished task's callback", triggers: [taskRunFinished], retries: 4 },
  async ({ event, step }) => {
    const taskId = event.data.task_id;
    const delivery = await step.run("open", () => openTaskCallback(db(), taskId));
    if (!delivery) return { task_id: taskId, skipped: "no callback_url (or the task has not ended)" };
    return { task_id: taskId, ...(await deliverWithRetries(step, delivery.id)) };
  },
);
