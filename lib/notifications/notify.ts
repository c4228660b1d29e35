// notify(): tell the owner something, through every configured channel, once per dedupe key.
//
//   1. record_notification inserts the row, or finds the one an earlier call with the same key inserted (the first
//      writer's content wins);
//   2. the event `notification/created` is recorded in the outbox (lib/outbox.ts) with id
//      notification-<sha256(dedupe key)>, so it is recorded once and Inngest drops a repeat for 24 hours as well;
//      the outbox relay sends it;
//   3. inngest/functions/deliver-notifications.ts delivers it in its own run — a channel that fails, or all of them,
//      can never fail the task that called notify().
//
// notify() returns as soon as the event is recorded. It throws only for invalid arguments (a bug in the caller) and
// when the database itself cannot be reached. If the process dies between recording the notification and its
// event, the row stays unconcluded and the sweeper (every 15 minutes) announces it again.
import { createHash } from "node:crypto";
import { z } from "zod";
import type { AdminClient } from "@/lib/db/admin";
import type { Json } from "@/lib/db/database.types";
import { EVENT } from "@/lib/events";
import { kickOutboxRelay, recordEvents } from "@/lib/outbox";
import type { NotificationKind } from "./format";
import { describeError } from "./redact";
import { enabledChannels, loadNotifyConfig } from "./config";
import { NO_CHANNEL } from "./deliver";
import { claimStale, findNotification, finishNotification, recordNotification } from "./store";

export interface NotifyInput {
  /** approval_requested, task_finished, task_failed, report_ready, budget_exhausted, or another lower_snake_case kind. */
  kind: NotificationKind;
  /** "Tell once" key: a second notify() with the same key records and sends nothing new. E.g.
   * `approval_requested:<approval id>`, `task_finished:<task id>`, `report_ready:<pipeline id>`. ≤ 300 characters. */
  dedupeKey: string;
  /** One line; clipped to 200 characters. */
  title: string;
  /** A few sentences; clipped to 4,000 characters (each channel clips further to its own limit). */
  body: string;
  agentId?: string | null;
  taskId?: string | null;
  /** A path on NIGHTSHIFT_PUBLIC_URL ("/review", "/tasks/<id>") or an absolute http(s) URL. Default: /review for
   * approvals, /tasks/<taskId> when there is a task, /review otherwise. */
  link?: string | null;
  /** Small structured context kept with the notification (not sent to any channel). */
  payload?: Record<string, Json>;
}

export interface NotifyResult {
  notificationId: string;
  /** False when the dedupe key was notified before (nothing new was recorded). */
  created: boolean;
  /** True when the delivery event is recorded in the outbox (or was recorded before). */
  announced: boolean;
  /** Why it was not announced, when it was not (redacted). */
  announceError?: string;
}

const Input = z.object({
  kind: z.string().regex(/^[a-z][a-z0-9_]{1,63}$/, "kind must be lower_snake_case (2-64 characters)"),
  dedupeKey: z.string().min(1).max(300),
  title: z.string().trim().min(1),
  body: z.string(),
  agentId: z.string().min(1).nullish(),
  taskId: z.uuid().nullish(),
  link: z
    .string()
    .max(2000)
    .regex(/^(\/|https?:\/\/)/, "link must be a path starting with / or an http(s) URL")
    .nullish(),
  payload: z.record(z.string(), z.json()).optional(),
});

const clip = (s: string, max: number) => ([...s].length <= max ? s : `${[...s].slice(0, max - 1).join("")}…`);

/** The event id for a notification's announcement: stable per dedupe key, so Inngest drops repeats for 24 h. */
export function notificationEventId(dedupeKey: string): string {
  return `notification-${createHash("sha256").update(dedupeKey).digest("hex").slice(0, 40)}`;
}

/** Records a notification (once per dedupe key) and announces it for delivery. See the module comment. */
export async function notify(db: AdminClient, input: NotifyInput, opts: { now?: Date } = {}): Promise<NotifyResult> {
  const parsed = Input.safeParse(input);
  if (!parsed.success) {
    throw new TypeError(`notify: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
  }
  const n = parsed.data;
  const row = await recordNotification(db, {
    kind: n.kind,
    dedupeKey: n.dedupeKey,
    title: clip(n.title, 200),
    body: clip(n.body, 4000),
    agentId: n.agentId,
    taskId: n.taskId,
    link: n.link,
    payload: n.payload as Json | undefined,
    now: opts.now,
  });
  // A repeat of a notification that is already delivered (or has given up) needs no event. One still under way
  // gets the event again: if the first announcement was lost, this one delivers it; if not, Inngest drops it.
  if (row.concluded) return { notificationId: row.id, created: row.created, announced: false };
  // No channel at all (the offline default): conclude it here instead of running a delivery that can only say so.
  const config = loadNotifyConfig();
  if (enabledChannels(config).length === 0 && Object.keys(config.problems).length === 0) {
    await finishNotification(db, row.id, NO_CHANNEL);
    return { notificationId: row.id, created: row.created, announced: false };
  }
  const sent = await sendEvent(db, row.id, n.kind, notificationEventId(n.dedupeKey));
  return { notificationId: row.id, created: row.created, ...sent };
}

/**
 * Announces a notification recorded elsewhere (e.g. by note_budget_exhausted in SQL) for delivery, by id or dedupe
 * key. Never throws for a delivery problem; false when the notification does not exist or the event could not be
 * sent (the sweeper picks it up later). Channels already sent are never sent again.
 */
export async function announce(db: AdminClient, ref: string | { id: string } | { dedupeKey: string }): Promise<boolean> {
  const key =
    typeof ref === "string"
      ? z.uuid().safeParse(ref).success
        ? { id: ref }
        : { dedupeKey: ref }
      : ref;
  const row = await findNotification(db, key);
  if (!row) return false;
  return (await sendEvent(db, row.id, row.kind, notificationEventId(row.dedupe_key))).announced;
}

/** Records the delivery event in the outbox and starts a relay pass. Never throws: a failure is the sweeper's. */
async function sendEvent(
  db: AdminClient,
  notificationId: string,
  kind: string,
  id: string,
): Promise<{ announced: boolean; announceError?: string }> {
  try {
    await recordEvents(db, [{ name: EVENT.notificationCreated, data: { notification_id: notificationId, kind }, id }]);
    void kickOutboxRelay();
    return { announced: true };
  } catch (err) {
    const message = describeError(err);
    console.warn(`[notifications] ${notificationId} is recorded but its delivery event was not (${message}); the sweeper will announce it`);
    return { announced: false, announceError: message };
  }
}

export interface SweepOptions {
  /** Only notifications at least this old (default 15 min: a normal delivery round is over by then). */
  minAgeSeconds?: number;
  /** ... and at most this old (default 48 h: older news is not worth a message in the middle of the night). */
  maxAgeSeconds?: number;
  limit?: number;
  /** A swept notification is not swept again for this long (default 15 min). */
  retrySeconds?: number;
  now?: Date;
}

/**
 * Re-announces notifications whose delivery never concluded (the event was never sent, or the round died). Each gets
 * a new event id (`…-sweep-<t>`), since Inngest would drop the original id for 24 h; the per-channel ledger keeps a
 * second round from sending any channel twice. Returns how many were claimed and how many events went out.
 */
export async function sweepNotifications(db: AdminClient, o: SweepOptions = {}): Promise<{ claimed: number; announced: number }> {
  const rows = await claimStale(db, {
    minAgeSeconds: o.minAgeSeconds ?? 900,
    maxAgeSeconds: o.maxAgeSeconds ?? 172_800,
    limit: o.limit ?? 100,
    retrySeconds: o.retrySeconds ?? 900,
    now: o.now,
  });
  if (rows.length === 0) return { claimed: 0, announced: 0 };
  const kinds = new Map<string, string>();
  const { data } = await db.from("notifications").select("id,kind").in("id", rows.map((r) => r.notification_id));
  for (const r of data ?? []) kinds.set(r.id, r.kind);
  const events = rows.map((r) => ({
    name: EVENT.notificationCreated,
    data: { notification_id: r.notification_id, kind: kinds.get(r.notification_id) ?? "unknown" },
    id: `${notificationEventId(r.dedupe_key)}-sweep-${Math.floor(Date.parse(r.next_attempt_at) / 1000)}`,
  }));
  try {
    await recordEvents(db, events);
    void kickOutboxRelay();
    return { claimed: rows.length, announced: rows.length };
  } catch (err) {
    // They were pushed back by retrySeconds: the next sweep tries again.
    console.warn(`[notifications] sweep could not announce ${rows.length} notification(s): ${describeError(err)}`);
    return { claimed: rows.length, announced: 0 };
  }
}
