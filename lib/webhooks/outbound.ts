// Every webhook Nightshift sends (task callbacks, peer hops) on the Standard Webhooks convention, signed with the
// `standardwebhooks` library: `webhook-id` is stable per delivery (receivers deduplicate on it), `webhook-timestamp`
// is fresh on every attempt, `webhook-signature: v1,<base64 HMAC-SHA256>` from the `whsec_` secret
// NIGHTSHIFT_WEBHOOK_SECRET (unset: sent unsigned). A delivery is a row with its exact body; each attempt is a row
// (webhook_delivery_attempts) written by one SQL function together with the delivery's new state, so the task page
// shows every try. 2xx delivers; 5xx, 408, 429, timeouts and network errors are retried with backoff by the
// calling Inngest function (at least once); any other answer (a redirect included) is final. Requests go through
// lib/net/guarded-fetch.ts: a target that resolves to a private address is refused (final) unless allow-listed
// (NIGHTSHIFT_FETCH_ALLOW, shared with web_fetch), and the socket connects to the address that was checked.
// Each target host has a circuit breaker (lib/breakers.ts, `callback:<host>`): 5xx and network failures feed it;
// while it is open no request goes out and the delivery waits ("wait") without spending one of its attempts.
import { Webhook } from "standardwebhooks";
import { loadToolConfig } from "@/lib/agents/tools";
import { acquireBreaker, dependency, recordBreaker } from "@/lib/breakers";
import type { AdminClient } from "@/lib/db/admin";
import type { Database, Json } from "@/lib/db/database.types";
import { env, isStandardWebhookSecret } from "@/lib/env";
import { GuardedFetchError, guardedFetch, type GuardedFetchOptions, type GuardedResponse } from "@/lib/net/guarded-fetch";

export const MAX_ATTEMPTS = 8;
const TIMEOUT_MS = 10_000;
const MAX_RETRY_AFTER_MS = 60 * 60_000;

export type Delivery = Database["public"]["Tables"]["webhook_deliveries"]["Row"];
export type DeliveryKind = "callback" | "peer";

/** Backoff before attempt `attempt + 1`: 10 s, 30 s, 90 s, ... capped at an hour (about 2.5 h over 8 attempts). */
export function backoffMs(attempt: number): number {
  return Math.min(10_000 * 3 ** (attempt - 1), MAX_RETRY_AFTER_MS);
}

/** The three Standard Webhooks headers for one attempt. */
export function signWebhook(secret: string, messageId: string, body: string, at: Date = new Date()): Record<string, string> {
  return {
    "webhook-id": messageId,
    "webhook-timestamp": String(Math.floor(at.getTime() / 1000)),
    "webhook-signature": new Webhook(secret).sign(messageId, at, body),
  };
}

/** Opens (or finds, on a retried step) the delivery with this message id. Small result: the id and state. */
export async function openDelivery(
  db: AdminClient,
  d: { messageId: string; taskId: string | null; kind: DeliveryKind; eventType: string; url: string; payload: Record<string, Json> },
): Promise<{ id: string; status: Delivery["status"]; attempts: number }> {
  const { data, error } = await db.rpc("open_webhook_delivery", {
    p_message_id: d.messageId,
    p_task_id: d.taskId as string,
    p_kind: d.kind,
    p_event_type: d.eventType,
    p_url: d.url,
    p_payload: JSON.stringify(d.payload),
  });
  if (error) throw new Error(`open_webhook_delivery failed: ${error.message}`);
  const row = (Array.isArray(data) ? data[0] : data) as Delivery | undefined;
  if (!row) throw new Error("open_webhook_delivery returned no row");
  return { id: row.id, status: row.status, attempts: row.attempts };
}

export interface AttemptResult {
  [key: string]: Json;
  /** "wait": the host's circuit breaker is open; nothing was sent and no attempt was used. */
  outcome: "delivered" | "retry" | "final" | "finished_already" | "wait";
  status_code: number | null;
  error: string | null;
  /** With "retry": how long to wait before the next attempt. */
  retry_after_ms: number | null;
}

/**
 * Makes attempt number `attempt` of a delivery and records it. `last` turns a retryable failure into the final
 * one (the caller has no attempts left). A delivery that already ended is not sent again.
 */
export async function attemptDelivery(
  db: AdminClient,
  deliveryId: string,
  attempt: number,
  opts: {
    last?: boolean;
    now?: () => Date;
    /** DNS and connect hooks (tests inject a rebinding resolver); default: the OS resolver. */
    net?: Pick<GuardedFetchOptions, "resolve" | "onConnect">;
  } = {},
): Promise<AttemptResult> {
  const { data: d, error } = await db.from("webhook_deliveries").select("*").eq("id", deliveryId).single();
  if (error) throw new Error(`delivery read failed: ${error.message}`);
  if (d.status !== "pending") return { outcome: "finished_already", status_code: d.last_status_code, error: d.last_error, retry_after_ms: null };

  const now = opts.now?.() ?? new Date();
  const breaker = dependency.callback(hostOf(d.url));
  const gate = await acquireBreaker(db, breaker, now);
  if (gate.role === "refused") {
    const waitMs = Math.max(1000, Date.parse(gate.retryAt) - now.getTime());
    return { outcome: "wait", status_code: null, error: `circuit breaker for ${hostOf(d.url)} is open until ${gate.retryAt}`, retry_after_ms: waitMs };
  }
  const started = Date.now();
  const result = await post(d, now, opts.net);
  // The host answered (2xx or a 4xx): it is up. No answer or a 5xx: it is failing. A refused address sent nothing.
  if (result.status_code !== null) {
    const down = result.status_code >= 500;
    await recordBreaker(db, breaker, down ? { success: false, outage: true, error: result.error ?? "5xx" } : { success: true });
  } else if (result.outcome === "retry") {
    await recordBreaker(db, breaker, { success: false, outage: true, error: result.error ?? "no answer" });
  }
  if (result.outcome === "retry" && opts.last) result.outcome = "final";
  const { error: recErr } = await db.rpc("record_webhook_attempt", {
    p_delivery_id: deliveryId,
    p_attempt: attempt,
    p_outcome: result.outcome,
    p_status_code: result.status_code as number,
    p_error: result.error as string,
    p_duration_ms: Date.now() - started,
  });
  if (recErr) throw new Error(`record_webhook_attempt failed: ${recErr.message}`);
  if (result.outcome !== "delivered") console.warn(`[webhooks] ${d.kind} ${d.message_id} to ${hostOf(d.url)} attempt ${attempt}: ${result.outcome} (${result.error})`);
  return result;
}

async function post(d: Delivery, at: Date, net: AttemptOptionsNet): Promise<AttemptResult> {
  const headers: Record<string, string> = { "content-type": "application/json", "user-agent": "Nightshift-Webhooks/1" };
  // A peer hop is signed with the secret shared with that peer (by variable name); everything else with
  // NIGHTSHIFT_WEBHOOK_SECRET. A peer hop never goes out unsigned: the peer would refuse it anyway.
  let secret: string | undefined = env().NIGHTSHIFT_WEBHOOK_SECRET;
  if (d.secret_env_name) {
    secret = process.env[d.secret_env_name]?.trim();
    if (!secret || !isStandardWebhookSecret(secret)) {
      return { outcome: "final", status_code: null, error: `${d.secret_env_name} is not set to a whsec_ secret: nothing was sent`, retry_after_ms: null };
    }
  }
  if (secret) Object.assign(headers, signWebhook(secret, d.message_id, d.payload, at));
  else headers["webhook-id"] = d.message_id;
  let res: GuardedResponse;
  try {
    res = await guardedFetch(d.url, {
      method: "POST",
      headers,
      body: d.payload,
      allow: loadToolConfig().webFetch.allow,
      signal: AbortSignal.timeout(TIMEOUT_MS),
      purpose: "webhooks",
      ...net,
    });
  } catch (err) {
    if (err instanceof GuardedFetchError && (err.kind === "refused" || err.kind === "invalid_url")) {
      return { outcome: "final", status_code: null, error: err.message.slice(0, 500), retry_after_ms: null };
    }
    const e = err as Error;
    const what = e.name === "TimeoutError" || e.name === "AbortError" ? `timed out after ${TIMEOUT_MS / 1000} s` : e.message;
    return { outcome: "retry", status_code: null, error: `no answer: ${what}`.slice(0, 500), retry_after_ms: null };
  }
  res.body.destroy();
  if (res.status >= 200 && res.status < 300) return { outcome: "delivered", status_code: res.status, error: null, retry_after_ms: null };
  const retryable = res.status === 408 || res.status === 429 || res.status >= 500;
  const ra = res.headers["retry-after"];
  return {
    outcome: retryable ? "retry" : "final",
    status_code: res.status,
    error: `answered ${res.status}`,
    retry_after_ms: retryable ? retryAfter(Array.isArray(ra) ? ra[0] ?? null : ra ?? null) : null,
  };
}

type AttemptOptionsNet = Pick<GuardedFetchOptions, "resolve" | "onConnect"> | undefined;

function retryAfter(value: string | null): number | null {
  if (!value) return null;
  const seconds = Number(value);
  const ms = Number.isFinite(seconds) ? seconds * 1000 : Date.parse(value) - Date.now();
  return Number.isFinite(ms) && ms > 0 ? Math.min(ms, MAX_RETRY_AFTER_MS) : null;
}

const hostOf = (url: string) => {
  try {
    return new URL(url).host;
  } catch {
    return "(invalid url)";
  }
};

/** The deliveries of a task and their attempts, for the task page and the API. */
export async function taskDeliveries(db: AdminClient, taskId: string) {
  const { data, error } = await db
    .from("webhook_deliveries")
    .select("id,message_id,kind,event_type,url,status,attempts,last_status_code,last_error,created_at,finished_at,webhook_delivery_attempts(attempt,outcome,status_code,error,duration_ms,at)")
    .eq("task_id", taskId)
    .order("created_at");
  if (error) throw new Error(`deliveries read failed: ${error.message}`);
  return (data ?? []).map((d) => ({
    ...d,
    webhook_delivery_attempts: [...(d.webhook_delivery_attempts ?? [])].sort((a, b) => a.attempt - b.attempt),
  }));
}
