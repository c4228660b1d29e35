// The durable delivery loop every outbound webhook shares (task callbacks, peer hops): each attempt is its own step
// (`attempt-N`, recorded in webhook_delivery_attempts); a retryable failure sleeps (`backoff-N`, durable) and tries
// again, at most MAX_ATTEMPTS times. While the host's circuit breaker is open the attempt waits
// (`breaker-wait-N-K`) without being spent. The delivery row is keyed by its webhook-id, so a duplicate event or a
// retried step never opens a second delivery and an ended delivery is never sent again.
import type { GetStepTools, Inngest } from "inngest";
import { db } from "@/lib/db/server";
import { MAX_ATTEMPTS, attemptDelivery, backoffMs } from "@/lib/webhooks/outbound";

type Step = GetStepTools<Inngest.Any>;

/** How many times one attempt waits for an open breaker (its cool-down is at most 30 min: about a day). */
const MAX_BREAKER_WAITS = 48;

export async function deliverWithRetries(
  step: Step,
  deliveryId: string,
): Promise<{ outcome: string; attempts: number; status_code?: number | null }> {
  let waits = 0;
  for (let n = 1; n <= MAX_ATTEMPTS; ) {
    const stepId = waits === 0 ? `attempt-${n}` : `attempt-${n}-after-wait-${waits}`;
    const r = await step.run(stepId, () => attemptDelivery(db(), deliveryId, n, { last: n === MAX_ATTEMPTS }));
    if (r.outcome === "wait" && waits < MAX_BREAKER_WAITS) {
      waits += 1;
      await step.sleep(`breaker-wait-${n}-${waits}`, `${Math.ceil((r.retry_after_ms ?? 60_000) / 1000)}s`);
      continue;
    }
    if (r.outcome !== "retry") return { outcome: r.outcome, attempts: n, status_code: r.status_code };
    await step.sleep(`backoff-${n}`, `${Math.ceil(Math.max(r.retry_after_ms ?? 0, backoffMs(n)) / 1000)}s`);
    n += 1;
    waits = 0;
  }
  return { outcome: "final", attempts: MAX_ATTEMPTS };
}
