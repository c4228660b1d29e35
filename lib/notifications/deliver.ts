// The bodies of the delivery steps (inngest/functions/deliver-notifications.ts composes them):
//
//   planDelivery     the notification + which channels to try; half-configured channels are recorded failed here
//   deliverChannel   one channel: claim (CAS) → send over HTTP → record sent / retrying / failed
//   recordChannelFailure   a channel whose step failed for good without recording its own outcome
//   finishNotification     (store.ts) delivered_at when a channel succeeded, last_error otherwise
//
// Retries: a transient failure releases the claim as 'retrying' and throws, so Inngest retries the step (after the
// provider's Retry-After when it gave one, bounded); on the step's last attempt it is recorded 'failed' and returned
// instead. A permanent failure (4xx) is recorded 'failed' at once. Either way the step ends normally, so the run goes
// on to the other channels and to `finish`.
import { RetryAfterError } from "inngest";
import type { AdminClient } from "@/lib/db/admin";
import { sendThrough } from "./channels";
import { enabledChannels, loadNotifyConfig, type Channel, type NotifyConfig } from "./config";
import { resolveLink } from "./format";
import { describeError, redact } from "./redact";
import { beginDelivery, claimDelivery, completeDelivery, failDelivery, loadContent } from "./store";

export const NO_CHANNEL = "no channel configured";
/** Step retries after the first attempt (Inngest's backoff: 15 s, 30 s, 1 min, 2 min, plus jitter). */
export const DELIVERY_RETRIES = 4;
/** The longest a provider's Retry-After is honoured; beyond it the ordinary backoff applies. */
export const MAX_RETRY_AFTER_MS = 5 * 60_000;
/** A claim's lease: longer than any one send can take (the HTTP timeout is at most 60 s). */
const LEASE_SECONDS = 120;

export interface DeliveryPlan {
  [key: string]: unknown;
  found: boolean;
  notification_id: string;
  kind: string | null;
  /** Channels with a step of their own, in a fixed order. */
  channels: Channel[];
  /** Half-configured channels, already recorded failed with the reason. */
  misconfigured: Channel[];
}

/** Starts a delivery round. The channel list is decided here, once, and memoized with the step. */
export async function planDelivery(
  db: AdminClient,
  notificationId: string,
  config: NotifyConfig = loadNotifyConfig(),
): Promise<DeliveryPlan> {
  const n = await beginDelivery(db, notificationId);
  if (!n) return { found: false, notification_id: notificationId, kind: null, channels: [], misconfigured: [] };
  const misconfigured = Object.keys(config.problems) as Channel[];
  for (const channel of misconfigured) {
    const reason = redact(`not configured correctly: ${config.problems[channel]}`, config.secrets);
    await failDelivery(db, notificationId, channel, { error: reason });
    console.warn(`[notifications] ${channel} ${reason}`);
  }
  return { found: true, notification_id: n.id, kind: n.kind, channels: enabledChannels(config), misconfigured };
}

export interface ChannelResult {
  [key: string]: unknown;
  channel: Channel;
  status: "sent" | "already_sent" | "failed" | "in_progress" | "skipped";
  attempts?: number;
  error?: string;
}

export interface StepAttempt {
  /** Zero-based attempt of the current step (the handler's `attempt`). */
  attempt: number;
  /** Attempts the step gets in all (the handler's `maxAttempts`). */
  maxAttempts: number;
}

/** Delivers one notification through one channel, at most once once recorded as sent. See the module comment. */
export async function deliverChannel(
  db: AdminClient,
  notificationId: string,
  channel: Channel,
  step: StepAttempt,
  config: NotifyConfig = loadNotifyConfig(),
): Promise<ChannelResult> {
  const secrets = config.secrets;
  if (config[channel] === null) {
    // Configured when the round was planned, gone now (a redeploy in between).
    const error = "the channel is no longer configured";
    await failDelivery(db, notificationId, channel, { error });
    return { channel, status: "failed", error };
  }
  const content = await loadContent(db, notificationId);
  if (!content) return { channel, status: "skipped", error: "the notification no longer exists" };

  const claim = await claimDelivery(db, notificationId, channel, LEASE_SECONDS);
  if (claim.outcome === "sent") return { channel, status: "already_sent", attempts: claim.attempts };
  // Another round of the same notification is sending it right now; that round records the outcome.
  if (claim.outcome === "in_progress") return { channel, status: "in_progress", attempts: claim.attempts };

  let outcome;
  try {
    outcome = await sendThrough(channel, config, content, {
      url: resolveLink(content, config.publicUrl),
      timeoutMs: config.timeoutMs,
      secrets,
      idempotencyKey: `notification/${notificationId}/${channel}`,
    });
  } catch (err) {
    // The senders do not throw; this is a bug. Release the claim so the retry may send.
    const error = describeError(err, secrets);
    await failDelivery(db, notificationId, channel, { error, token: claim.token, retry: true }).catch(() => false);
    throw new Error(`${channel}: ${error}`);
  }
  if (!outcome) throw new Error(`${channel}: no sender`);

  if (outcome.ok) {
    await recordSent(db, notificationId, channel, outcome);
    return { channel, status: "sent", attempts: claim.attempts };
  }

  const error = redact(outcome.error, secrets);
  const last = step.attempt + 1 >= step.maxAttempts;
  if (!outcome.transient || last) {
    const recorded = outcome.transient ? `${error} (gave up after ${step.maxAttempts} attempts)` : error;
    await failDelivery(db, notificationId, channel, { error: recorded, token: claim.token, status: outcome.status });
    console.warn(`[notifications] ${channel} delivery of ${notificationId} failed: ${recorded}`);
    return { channel, status: "failed", attempts: claim.attempts, error: recorded.slice(0, 500) };
  }

  await failDelivery(db, notificationId, channel, { error, token: claim.token, retry: true, status: outcome.status });
  const message = `${channel} delivery of ${notificationId} will be retried: ${error}`;
  if (outcome.retryAfterMs !== undefined && outcome.retryAfterMs <= MAX_RETRY_AFTER_MS) {
    throw new RetryAfterError(message, Math.max(1000, Math.ceil(outcome.retryAfterMs)));
  }
  throw new Error(message);
}

/** The message went out: recording it matters more than anything else, so a failed write is retried briefly. */
async function recordSent(
  db: AdminClient,
  notificationId: string,
  channel: Channel,
  sent: { providerId: string | null; status: number },
): Promise<void> {
  let last: unknown;
  for (let i = 0; i < 4; i++) {
    if (i > 0) await new Promise((r) => setTimeout(r, 100 * 2 ** i));
    try {
      await completeDelivery(db, notificationId, channel, sent);
      return;
    } catch (err) {
      last = err;
    }
  }
  // The lease keeps a retry from sending again until it expires; after that a new round may (email is still
  // deduplicated by its Idempotency-Key).
  throw new Error(`${channel}: sent, but recording it failed: ${describeError(last)}`);
}

/** A channel whose step failed for good before it could record its outcome (e.g. the database was unreachable). */
export async function recordChannelFailure(
  db: AdminClient,
  notificationId: string,
  channel: Channel,
  err: unknown,
  config: NotifyConfig = loadNotifyConfig(),
): Promise<ChannelResult> {
  const error = describeError(err, config.secrets);
  await failDelivery(db, notificationId, channel, { error });
  console.warn(`[notifications] ${channel} delivery of ${notificationId} failed: ${error}`);
  return { channel, status: "failed", error: error.slice(0, 500) };
}
