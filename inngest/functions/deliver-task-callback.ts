// Delivers a finished task's callback (Standard Webhooks, lib/webhooks/outbound.ts). Triggered by
// `task/run.finished`, which every terminal status emits once, so completed, stopped, rejected, failed and
// cancelled tasks all get their one POST. Each attempt is its own step (`attempt-N`, recorded in
// webhook_delivery_attempts); a retryable failure sleeps (`backoff-N`, durable) and tries again, at most
// MAX_ATTEMPTS times. While the host's circuit breaker is open the attempt waits (`breaker-wait-N-K`) without being
// spent. The delivery row is keyed by its webhook-id, so a duplicate event or a retried step never opens a second
// delivery and an ended delivery is never sent again.
import { inngest } from "@/inngest/client";
import { taskRunFinished } from "@/inngest/events";
import { db } from "@/lib/db/server";
import { MAX_ATTEMPTS, attemptDelivery, backoffMs } from "@/lib/webhooks/outbound";
import { openTaskCallback } from "@/lib/webhooks/task-callback";

/** How many times one attempt waits for an open breaker (its cool-down is at most 30 min: about a day). */
const MAX_BREAKER_WAITS = 48;

export const deliverTaskCallback = inngest.createFunction(
  { id: "deliver-task-callback", name: "Deliver a finished task's callback", triggers: [taskRunFinished], retries: 4 },
  async ({ event, step }) => {
    const taskId = event.data.task_id;
    const delivery = await step.run("open", () => openTaskCallback(db(), taskId));
    if (!delivery) return { task_id: taskId, skipped: "no callback_url (or the task has not ended)" };
    let waits = 0;
    for (let n = 1; n <= MAX_ATTEMPTS; ) {
      const stepId = waits === 0 ? `attempt-${n}` : `attempt-${n}-after-wait-${waits}`;
      const r = await step.run(stepId, () => attemptDelivery(db(), delivery.id, n, { last: n === MAX_ATTEMPTS }));
      if (r.outcome === "wait" && waits < MAX_BREAKER_WAITS) {
        waits += 1;
        await step.sleep(`breaker-wait-${n}-${waits}`, `${Math.ceil((r.retry_after_ms ?? 60_000) / 1000)}s`);
        continue;
      }
      if (r.outcome !== "retry") return { task_id: taskId, outcome: r.outcome, attempts: n, status_code: r.status_code };
      await step.sleep(`backoff-${n}`, `${Math.ceil(Math.max(r.retry_after_ms ?? 0, backoffMs(n)) / 1000)}s`);
      n += 1;
      waits = 0;
    }
    return { task_id: taskId, outcome: "final", attempts: MAX_ATTEMPTS };
  },
);
