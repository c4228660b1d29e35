// Typed calls of the notification functions (supabase/migrations/20261126093100_notification_deliveries.sql).
// Every decision — is this key new, may this channel be sent, is the notification concluded — is made there.
import type { AdminClient } from "@/lib/db/admin";
import type { Json } from "@/lib/db/database.types";
import type { Channel } from "./config";
import type { NotificationContent } from "./format";

/** A database call failed (the database or PostgREST is unreachable, or refused an argument). */
export class NotificationError extends Error {
  readonly code: string | undefined;
  constructor(op: string, error: { message: string; code?: string }) {
    super(`${op} failed: ${error.message}`);
    this.name = "NotificationError";
    this.code = error.code;
  }
}

const iso = (d: Date | undefined) => d?.toISOString();

export async function recordNotification(
  db: AdminClient,
  n: {
    kind: string;
    dedupeKey: string;
    title: string;
    body: string;
    agentId?: string | null;
    taskId?: string | null;
    link?: string | null;
    payload?: Json;
    now?: Date;
  },
): Promise<{ id: string; created: boolean; concluded: boolean }> {
  const { data, error } = await db.rpc("record_notification", {
    p_kind: n.kind,
    p_dedupe_key: n.dedupeKey,
    p_title: n.title,
    p_body: n.body,
    p_agent_id: n.agentId ?? undefined,
    p_task_id: n.taskId ?? undefined,
    p_link: n.link ?? undefined,
    p_payload: n.payload ?? undefined,
    p_now: iso(n.now),
  });
  if (error) throw new NotificationError("record_notification", error);
  const row = data?.[0];
  if (!row) throw new NotificationError("record_notification", { message: "no row returned" });
  return { id: row.notification_id, created: row.created, concluded: Boolean(row.delivered_at || row.last_error) };
}

/** Looks a notification up by id or by dedupe key. */
export async function findNotification(
  db: AdminClient,
  ref: { id: string } | { dedupeKey: string },
): Promise<{ id: string; kind: string; dedupe_key: string; delivered_at: string | null; last_error: string | null } | null> {
  const q = db.from("notifications").select("id,kind,dedupe_key,delivered_at,last_error");
  const { data, error } = await ("id" in ref ? q.eq("id", ref.id) : q.eq("dedupe_key", ref.dedupeKey)).maybeSingle();
  if (error) throw new NotificationError("find notification", error);
  return data;
}

export type DeliveryRound = NotificationContent & {
  dedupe_key: string;
  agent_id: string | null;
  delivered_at: string | null;
  last_error: string | null;
  attempts: number;
};

/** Counts a delivery round and returns the notification; null when it does not exist. */
export async function beginDelivery(db: AdminClient, notificationId: string): Promise<DeliveryRound | null> {
  const { data, error } = await db.rpc("begin_notification_delivery", { p_notification_id: notificationId });
  if (error) throw new NotificationError("begin_notification_delivery", error);
  const r = data?.[0];
  if (!r) return null;
  return {
    id: r.id,
    kind: r.kind,
    dedupe_key: r.dedupe_key,
    title: r.title,
    body: r.body,
    link: r.link ?? null,
    task_id: r.task_id ?? null,
    agent_id: r.agent_id ?? null,
    delivered_at: r.delivered_at ?? null,
    last_error: r.last_error ?? null,
    attempts: r.attempts,
  };
}

export async function loadContent(db: AdminClient, notificationId: string): Promise<NotificationContent | null> {
  const { data, error } = await db
    .from("notifications")
    .select("id,kind,title,body,link,task_id")
    .eq("id", notificationId)
    .maybeSingle();
  if (error) throw new NotificationError("load notification", error);
  return data;
}

export type Claim =
  | { outcome: "claimed"; token: string; attempts: number }
  | { outcome: "sent"; attempts: number; providerId: string | null }
  | { outcome: "in_progress"; attempts: number; leaseExpiresAt: string | null };

export async function claimDelivery(
  db: AdminClient,
  notificationId: string,
  channel: Channel,
  leaseSeconds: number,
): Promise<Claim> {
  const { data, error } = await db.rpc("claim_notification_delivery", {
    p_notification_id: notificationId,
    p_channel: channel,
    p_lease_seconds: leaseSeconds,
  });
  if (error) throw new NotificationError("claim_notification_delivery", error);
  const r = data?.[0];
  if (!r) throw new NotificationError("claim_notification_delivery", { message: "no row returned" });
  switch (r.outcome) {
    case "claimed":
      return { outcome: "claimed", token: r.claim_token, attempts: r.attempts };
    case "sent":
      return { outcome: "sent", attempts: r.attempts, providerId: r.provider_id ?? null };
    case "in_progress":
      return { outcome: "in_progress", attempts: r.attempts, leaseExpiresAt: r.lease_expires_at ?? null };
    default:
      throw new NotificationError("claim_notification_delivery", { message: `unknown outcome ${r.outcome}` });
  }
}

export async function completeDelivery(
  db: AdminClient,
  notificationId: string,
  channel: Channel,
  sent: { providerId: string | null; status: number },
): Promise<boolean> {
  const { data, error } = await db.rpc("complete_notification_delivery", {
    p_notification_id: notificationId,
    p_channel: channel,
    p_provider_id: sent.providerId ?? undefined,
    p_response_status: sent.status,
  });
  if (error) throw new NotificationError("complete_notification_delivery", error);
  return data === true;
}

/** `error` must already be redacted. Without a token: a failure outside any claim (see the migration). */
export async function failDelivery(
  db: AdminClient,
  notificationId: string,
  channel: Channel,
  f: { error: string; token?: string; retry?: boolean; status?: number | null },
): Promise<boolean> {
  const { data, error } = await db.rpc("fail_notification_delivery", {
    p_notification_id: notificationId,
    p_channel: channel,
    p_error: f.error,
    p_claim_token: f.token,
    p_retry: f.retry ?? false,
    p_response_status: f.status ?? undefined,
  });
  if (error) throw new NotificationError("fail_notification_delivery", error);
  return data === true;
}

export interface Conclusion {
  [key: string]: Json;
  concluded: boolean;
  delivered_at: string | null;
  last_error: string | null;
  sent: number;
  failed: number;
  in_flight: number;
}

export async function finishNotification(db: AdminClient, notificationId: string, reason?: string): Promise<Conclusion> {
  const { data, error } = await db.rpc("finish_notification", { p_notification_id: notificationId, p_reason: reason });
  if (error) throw new NotificationError("finish_notification", error);
  const r = data?.[0];
  if (!r) throw new NotificationError("finish_notification", { message: "no row returned" });
  return {
    concluded: r.concluded,
    delivered_at: r.delivered_at ?? null,
    last_error: r.last_error ?? null,
    sent: r.sent,
    failed: r.failed,
    in_flight: r.in_flight,
  };
}

export async function claimStale(
  db: AdminClient,
  o: { minAgeSeconds: number; maxAgeSeconds: number; limit: number; retrySeconds: number; now?: Date },
): Promise<{ notification_id: string; dedupe_key: string; next_attempt_at: string }[]> {
  const { data, error } = await db.rpc("sweep_notifications", {
    p_min_age_seconds: o.minAgeSeconds,
    p_max_age_seconds: o.maxAgeSeconds,
    p_limit: o.limit,
    p_retry_seconds: o.retrySeconds,
    p_now: iso(o.now),
  });
  if (error) throw new NotificationError("sweep_notifications", error);
  return data ?? [];
}

/**
 * The channel waits for its circuit breaker (wait_notification_delivery): its row is 'retrying' with the reason (a
 * held claim released), and the sweeper leaves the notification alone until after `until`. False when the channel
 * was sent meanwhile, or is being sent under a live lease.
 */
export async function waitDelivery(
  db: AdminClient,
  notificationId: string,
  channel: Channel,
  w: { reason: string; until: string; token?: string; now?: Date },
): Promise<boolean> {
  const { data, error } = await db.rpc("wait_notification_delivery", {
    p_notification_id: notificationId,
    p_channel: channel,
    p_reason: w.reason,
    p_until: w.until,
    p_claim_token: w.token,
    p_now: iso(w.now),
  });
  if (error) throw new NotificationError("wait_notification_delivery", error);
  return data === true;
}
