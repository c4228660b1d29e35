// Delivers a notification (lib/notifications) through every configured channel — Slack, Telegram, email — in its own
// run, so nothing that happens here can fail the task that caused it.
//
//   load                   plan the round: which channels (decided once, memoized); half-configured ones recorded
//   deliver-<channel>      one step per channel, in parallel: claim → send → record; transient failures retry the
//                          step, a permanent one (or the last attempt) records the channel failed and ends normally
//   deliver-<channel>-failed   only if a channel's step failed for good anyway (e.g. the database was down)
//   breaker-wait-<channel>-<n>, deliver-<channel>-<n+1>
//                          the channel's circuit breaker is open: sleep until its next probe, then try again (no
//                          attempt spent); after MAX_BREAKER_WAIT_MS of waiting, deliver-<channel>-gave-up records it
//                          failed with the reason
//   finish                 delivered_at when any channel went out, last_error otherwise
//
// With no channel configured the round records "no channel configured" and completes.
//
// The sweeper below re-announces notifications whose round never concluded (a lost event, a run that died).
// It lives in this file because both functions are the notification delivery; it is a separate function.
import { inngest } from "@/inngest/client";
import { notificationCreated } from "@/inngest/events";
import { db } from "@/lib/db/server";
import { CHANNELS, sweepNotifications, type Channel } from "@/lib/notifications";
import {
  DELIVERY_RETRIES,
  MAX_BREAKER_WAIT_MS,
  NO_CHANNEL,
  deliverChannel,
  giveUpWaiting,
  planDelivery,
  recordChannelFailure,
  type ChannelResult,
} from "@/lib/notifications/deliver";
import { finishNotification } from "@/lib/notifications/store";

export const deliverNotifications = inngest.createFunction(
  {
    id: "deliver-notifications",
    name: "Deliver a notification",
    triggers: [notificationCreated],
    retries: DELIVERY_RETRIES,
    // Many notifications at once (a morning's worth of approvals) should not open dozens of connections to one
    // webhook; the per-channel ledger already makes concurrent rounds of one notification safe.
    concurrency: { limit: 10 },
  },
  async ({ event, step, attempt, maxAttempts }) => {
    const id = event.data.notification_id;
    const plan = await step.run("load", () => planDelivery(db(), id));
    if (!plan.found) return { notification_id: id, skipped: "no such notification" };

    if (plan.channels.length === 0) {
      const finished = await step.run("finish", () =>
        finishNotification(db(), id, plan.misconfigured.length === 0 ? NO_CHANNEL : undefined),
      );
      return { notification_id: id, channels: {}, ...finished };
    }

    const attempts = { attempt, maxAttempts: maxAttempts ?? DELIVERY_RETRIES + 1 };
    const results = await Promise.all(
      plan.channels.filter(isChannel).map(async (channel): Promise<ChannelResult> => {
        let firstWait = 0; // when the first breaker wait began (ms, from a memoized step's answer)
        let wakeAt = 0; // the breaker's clock never runs behind a wait the run slept through
        for (let n = 1; ; n++) {
          const stepId = n === 1 ? `deliver-${channel}` : `deliver-${channel}-${n}`;
          let r: ChannelResult;
          try {
            r = await step.run(stepId, () => deliverChannel(db(), id, channel, attempts, undefined, new Date(Math.max(Date.now(), wakeAt))));
          } catch (err) {
            // The step failed for good without recording its outcome; record it so the round can conclude.
            return await step.run(`${stepId}-failed`, () => recordChannelFailure(db(), id, channel, err));
          }
          if (r.status !== "waiting" || !r.retry_at) return r;
          // The channel's breaker is open: kept, not failed; tried again after its next probe time.
          const retryAt = Date.parse(r.retry_at);
          if (!firstWait) firstWait = r.at ?? retryAt;
          if (retryAt - firstWait > MAX_BREAKER_WAIT_MS) {
            const waited = retryAt - firstWait;
            return await step.run(`deliver-${channel}-gave-up`, () => giveUpWaiting(db(), id, channel, waited));
          }
          await step.sleepUntil(`breaker-wait-${channel}-${n}`, r.retry_at);
          wakeAt = Math.max(wakeAt, retryAt);
        }
      }),
    );
    const finished = await step.run("finish", () => finishNotification(db(), id));
    return {
      notification_id: id,
      channels: Object.fromEntries(results.map((r) => [r.channel, r.status])),
      ...finished,
    };
  },
);

const isChannel = (c: string): c is Channel => (CHANNELS as readonly string[]).includes(c);

/** Every 15 minutes: re-announce notifications older than 15 minutes whose delivery never concluded. */
export const sweepUndeliveredNotifications = inngest.createFunction(
  {
    id: "sweep-notifications",
    name: "Re-announce undelivered notifications",
    triggers: [{ cron: "TZ=UTC */15 * * * *" }],
    retries: 2,
    concurrency: { limit: 1 },
  },
  async ({ step }) => step.run("sweep", () => sweepNotifications(db())),
);
