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
//
// Circuit breakers: each channel is one dependency (slack, telegram, resend; lib/breakers.ts). While its breaker is
// open the channel is not called and its delivery is not failed: the step answers `waiting` with the next probe time,
// the row says so ('retrying', with the reason), and the run sleeps durably and tries again — the notification goes
// out after the breaker closes. An outage failure that opens the breaker (or meets it open) becomes the same wait
// instead of a spent attempt. A channel still waiting after MAX_BREAKER_WAIT_MS is recorded failed with the reason.
import { RetryAfterError } from "inngest";
import { acquireBreaker, dependency, recordBreaker } from "@/lib/breakers";
import type { AdminClient } from "@/lib/db/admin";
import { sendThrough, type SendOutcome } from "./channels";
import { enabledChannels, loadNotifyConfig, type Channel, type NotifyConfig } from "./config";
import { resolveLink } from "./format";
import { describeError, redact } from "./redact";
import { beginDelivery, claimDelivery, completeDelivery, failDelivery, loadContent, waitDelivery } from "./store";

export const NO_CHANNEL = "no channel configured";
/** Step retries after the first attempt (Inngest's backoff: 15 s, 30 s, 1 min, 2 min, plus jitter). */
export const DELIVERY_RETRIES = 4;
/** The longest a provider's Retry-After is honoured; beyond it the ordinary backoff applies. */
export const MAX_RETRY_AFTER_MS = 5 * 60_000;
/** A claim's lease: longer than any one send can take (the HTTP timeout is at most 60 s). */
const LEASE_SECONDS = 120;
/** How long a channel's delivery waits for its breaker to close before it is recorded failed (a day: the owner
 * reads a late notice, but not one about a night already reviewed). */
export const MAX_BREAKER_WAIT_MS = 24 * 3_600_000;

/** Each channel's circuit breaker. (A function: lib/breakers imports lib/notifications, so nothing of it is used at
 * module load.) */
export function channelDependency(channel: Channel): string {
  return channel === "email" ? dependency.email() : channel === "slack" ? dependency.slack() : dependency.telegram();
}

/** "The other side is down": unreachable, a timeout, 5xx. Not a 429/425 (pacing) and not a refusal of our request. */
export function isOutage(outcome: Extract<SendOutcome, { ok: false }>): boolean {
  return outcome.transient && (outcome.status === null || outcome.status === 408 || outcome.status >= 500);
}

function waitingReason(dep: string, retryAt: string, lastError: string | null): string {
  return `waiting for ${dep}, which is down (circuit breaker open${lastError ? `; last error: ${lastError}` : ""}); next try at ${retryAt}`;
}

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
  status: "sent" | "already_sent" | "failed" | "in_progress" | "skipped" | "waiting";
  attempts?: number;
  error?: string;
  /** waiting: when the channel's breaker lets a call through again (ISO), and when it refused (ms). */
  retry_at?: string;
  at?: number;
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
  /** The run's notion of now (never earlier than a breaker wait it slept until): the breaker's clock. */
  now: Date = new Date(),
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

  const dep = channelDependency(channel);
  const gate = await acquireBreaker(db, dep, now);
  if (gate.role === "refused") {
    // Not called, not failed: kept for after the breaker closes. (False: it was sent meanwhile — the claim says so.)
    const reason = waitingReason(dep, gate.retryAt, gate.lastError);
    if (await waitDelivery(db, notificationId, channel, { reason, until: gate.retryAt })) {
      return { channel, status: "waiting", retry_at: gate.retryAt, at: now.getTime(), error: reason };
    }
  }

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
    await recordBreaker(db, dep, { success: true }, now).catch((err: unknown) => console.warn(`[notifications] breaker ${dep}: ${describeError(err, secrets)}`));
    return { channel, status: "sent", attempts: claim.attempts };
  }

  const error = redact(outcome.error, secrets);
  const outage = isOutage(outcome);
  // The breaker never adds a failure of its own: if it cannot be recorded, the ordinary retries apply.
  const breaker = await recordBreaker(db, dep, { success: false, outage, error }, now).catch(() => null);
  if (outage && breaker && breaker.state !== "closed" && breaker.nextProbeAt) {
    // This failure opened the breaker (or met it open): wait for the probe instead of spending an attempt.
    const reason = `${error}; ${waitingReason(dep, breaker.nextProbeAt, null)}`;
    await waitDelivery(db, notificationId, channel, { reason, until: breaker.nextProbeAt, token: claim.token });
    return { channel, status: "waiting", attempts: claim.attempts, retry_at: breaker.nextProbeAt, at: now.getTime(), error: reason.slice(0, 500) };
  }
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

/** A channel that waited MAX_BREAKER_WAIT_MS for its breaker and is still refused: recorded failed with the reason. */
export async function giveUpWaiting(db: AdminClient, notificationId: string, channel: Channel, waitedMs: number): Promise<ChannelResult> {
  const dep = channelDependency(channel);
  const error = `gave up: ${dep} stayed down for ${Math.round(waitedMs / 3_600_000)} h (its circuit breaker did not close)`;
  await failDelivery(db, notificationId, channel, { error });
  console.warn(`[notifications] ${channel} delivery of ${notificationId} failed: ${error}`);
  return { channel, status: "failed", error };
}
