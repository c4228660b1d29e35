// Delivers a finished task's callback (Standard Webhooks, lib/webhooks/outbound.ts). Triggered by
// `task/run.finished`, which every terminal status emits once, so completed, stopped, rejected, failed and
// cancelled tasks all get their one POST. Each attempt is its own step (`attempt-N`, recorded in
// webhook_delivery_attempts); a retryable failure sleeps (`backoff-N`, durable) and tries again, at most
// MAX_ATTEMPTS times. The delivery row is keyed by its webhook-id, so a duplicate event or a retried step
// never opens a second delivery and an ended delivery is never sent again.
import { inngest } from "@/inngest/client";
import { taskRunFinished } from "@/inngest/events";
import { db } from "@/lib/db/server";
import { MAX_ATTEMPTS, attemptDelivery, backoffMs } from "@/lib/webhooks/outbound";
import { openTaskCallback } from "@/lib/webhooks/task-callback";

export const deliverTaskCallback = inngest.createFunction(
  { id: "deliver-task-callback", name: "Deliver a finished task's callback", triggers: [taskRunFinished], retries: 4 },
  async ({ event, step }) => {
    const taskId = event.data.task_id;
    const delivery = await step.run("open", () => openTaskCallback(db(), taskId));
    if (!delivery) return { task_id: taskId, skipped: "no callback_url (or the task has not ended)" };
    for (let n = 1; n <= MAX_ATTEMPTS; n++) {
      const r = await step.run(`attempt-${n}`, () => attemptDelivery(db(), delivery.id, n, { last: n === MAX_ATTEMPTS }));
      if (r.outcome !== "retry") return { task_id: taskId, outcome: r.outcome, attempts: n, status_code: r.status_code };
      await step.sleep(`backoff-${n}`, `${Math.ceil(Math.max(r.retry_after_ms ?? 0, backoffMs(n)) / 1000)}s`);
    }
    return { task_id: taskId, outcome: "final", attempts: MAX_ATTEMPTS };
  },
);
