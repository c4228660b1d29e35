// The outbox relay (docs/outbox.md): sends the events that lib/ recorded in the outbox, in batches, with
// `inngest.send`, and marks them sent. It lives in inngest/ because it uses the Inngest client; lib/ reaches it only
// through the registration at the bottom (lib/outbox.ts kickOutboxRelay).
//
// Three things run it: a route right after its response (`relayAfterResponse`, Next's after(), which Vercel keeps
// alive), lib's background kick, and the sweeper cron (functions/outbox-sweeper.ts) for anything left behind.
// Claims are FOR UPDATE SKIP LOCKED with a lease, so concurrent relays never send the same row; a relay that dies
// mid-send leaves its rows to be retried after the lease, and the stable event id makes that resend harmless.
import { after } from "next/server";
import { inngest } from "@/inngest/client";
import type { AdminClient } from "@/lib/db/admin";
import type { Json } from "@/lib/db/database.types";
import { Coalescer } from "@/lib/coalesce";
import { db as serverDb } from "@/lib/db/server";
import { registerOutboxDelivery, registerOutboxRelay, type ClaimedEvent, type KickOptions, type RelayResult } from "@/lib/outbox";
import { RelayLane } from "@/lib/relay-lane";

export const RELAY_BATCH = 100;
/** The first claim of a pass is small: what a kick was for (most often a slot's wake-up, which the claim takes before
 * new work) then leaves in a batch of its own, not behind the engine's ingest of a hundred new runs. */
export const RELAY_FIRST_BATCH = 10;
/** Passes one process runs at once: a kick that arrives during a long pass starts a second one at once (claims skip
 * each other's rows), instead of waiting for the first to end. */
const MAX_PASSES = 2;
/** Under load, the relays that routes start after their responses begin at most this often per process: a pass costs
 * three round trips (claim, send, mark) whatever it carries, so at 100 POST/s one pass per POST cost about as much as
 * the POSTs themselves; every ≥ 50 ms it carries ~5 (docs/benchmarks.md). A POST with no pass in the last 50 ms — a
 * lone one — still has its relay start right after its response. */
export const RELAY_COALESCE_MS = 50;
/** How long a claimed row is held by one relay before another may take it (a relay that died mid-send). */
export const RELAY_LEASE_SECONDS = 30;
/** The most one send may take; past it the rows are released (marked failed) for a later pass. */
const SEND_TIMEOUT_MS = 10_000;

export interface OutgoingEvent {
  name: string;
  data: Json;
  id: string;
}

export interface RelayOptions {
  db?: AdminClient;
  /** How events leave: inngest.send by default. Tests inject a failing one. */
  send?: (events: OutgoingEvent[]) => Promise<unknown>;
  limit?: number;
  /** The first round's claim (default: `limit`). */
  firstLimit?: number;
  /** Claim-send-mark rounds in one pass at most (each of up to `limit` events). */
  maxRounds?: number;
}

async function defaultSend(events: OutgoingEvent[]): Promise<unknown> {
  let timer: NodeJS.Timeout | undefined;
  const sending = inngest.send(events as never);
  sending.catch(() => {}); // observed by the race below
  try {
    return await Promise.race([
      sending,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`the event API did not answer within ${SEND_TIMEOUT_MS} ms`)), SEND_TIMEOUT_MS);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Sends claimed rows in one batch and marks them sent; on a failed send marks them failed (they back off and are
 * retried). Rejects only when marking them sent fails (they were sent: the lease runs out and they are sent again
 * under the same ids, which Inngest drops).
 */
export async function sendClaimed(rows: ClaimedEvent[], o: Pick<RelayOptions, "db" | "send"> = {}): Promise<RelayResult> {
  const db = o.db ?? serverDb();
  const send = o.send ?? defaultSend;
  const ids = rows.map((r) => r.id);
  try {
    await send(rows.map((r) => ({ name: r.name, data: r.data, id: r.event_id })));
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    console.warn(`[outbox] ${rows.length} event(s) not sent (${message}); they stay recorded and are retried`);
    await db.rpc("outbox_mark_failed", { p_ids: ids, p_error: message });
    return { sent: 0, failed: rows.length };
  }
  const { error: markError } = await db.rpc("outbox_mark_sent", { p_ids: ids });
  if (markError) throw new Error(`outbox_mark_sent failed: ${markError.message}`);
  return { sent: rows.length, failed: 0 };
}

/** One relay pass: claim pending events, send them in one batch, mark them sent; repeat while full batches come. */
export async function relayOutbox(o: RelayOptions = {}): Promise<RelayResult> {
  const db = o.db ?? serverDb();
  const limit = o.limit ?? RELAY_BATCH;
  const total: RelayResult = { sent: 0, failed: 0 };
  for (let round = 0; round < (o.maxRounds ?? 10); round++) {
    const take = round === 0 ? (o.firstLimit ?? limit) : limit;
    const { data: rows, error } = await db.rpc("outbox_claim", { p_limit: take, p_lease_seconds: RELAY_LEASE_SECONDS });
    if (error) throw new Error(`outbox_claim failed: ${error.message}`);
    if (!rows || rows.length === 0) break;
    const r = await sendClaimed(rows, { db, send: o.send });
    total.sent += r.sent;
    total.failed += r.failed;
    if (r.failed > 0) break; // the event API is down: leave the rest for the next pass
    if (rows.length < take) break;
  }
  return total;
}

const pending = new RelayLane(MAX_PASSES, () => {
  routeRelays.started(); // every claim round, kicks' too, opens a window the routes' relays coalesce into
  return relayOutbox({ firstLimit: RELAY_FIRST_BATCH });
});

/** Relays what is pending. Resolves once every pass running at the call has ended (one of them started after the
 * call, or runs once more), so what the caller recorded before calling has been sent by then (or has failed). */
export function relayPending(): Promise<RelayResult> {
  return pending.run();
}

/**
 * relayPending for the routes' after-response relays: at once when no claim round began in the last
 * RELAY_COALESCE_MS (a lone submission is sent right after its response), else one shared pass RELAY_COALESCE_MS
 * after that round, which every route relay arriving meanwhile joins — a burst of POSTs becomes a few batched passes
 * instead of one per POST. Resolves as relayPending does: what the caller recorded before calling has been sent by
 * then (or has failed).
 */
const routeRelays = new Coalescer<RelayResult>(() => relayPending(), RELAY_COALESCE_MS);

export function relayCoalesced(): Promise<RelayResult> {
  return routeRelays.call();
}

/**
 * For route handlers: relay after the response is sent (Next's after(); Vercel keeps the function alive for it),
 * coalesced with the other routes' relays under load (relayCoalesced). Outside a request scope (a route handler
 * called directly, e.g. by a test) it relays in the background instead.
 */
export function relayAfterResponse(): void {
  const pass = () =>
    relayCoalesced().then(
      () => {},
      (err) => console.warn(`[outbox] relay pass failed: ${err instanceof Error ? err.message : String(err)}; the sweeper will retry`),
    );
  try {
    after(pass);
  } catch {
    void pass();
  }
}

// The wake-up lane: a kick for a run already under way (a slot handed over) starts a pass of one small round of its
// own at once — the claim takes wake-ups first — instead of waiting for a running pass to finish its round of a
// hundred new runs (under a submission burst that wait was most of a slot's idle time: bench:slots, docs/benchmarks.md).
// One lane pass at a time; a kick meanwhile makes it claim once more before it ends.
const wakeUps = new RelayLane(1, () => relayOutbox({ firstLimit: RELAY_FIRST_BATCH, maxRounds: 1 }));

/**
 * lib's kick (a slot handed over, a task recorded by a step): the pass starts now, and inside a request — the
 * /api/inngest call that ran the step, on Vercel its own invocation — it is also handed to after(), so the platform
 * keeps the invocation alive until the pass ends instead of freezing it with the wake-up unsent (the sweeper would
 * send it only at its next minute).
 */
function kickedRelay(o?: KickOptions): Promise<RelayResult> {
  const pass = o?.wakeUp ? wakeUps.run() : relayPending();
  try {
    after(pass.then(() => {}, () => {})); // a failure is reported by the caller (lib/outbox.ts kickOutboxRelay)
  } catch {
    // Outside a request scope (a script, a test's own server): nothing to keep alive.
  }
  return pass;
}

registerOutboxRelay(kickedRelay);

/**
 * lib's direct send of rows it claimed itself (a slot's hand-over: the release returned its wake-up already claimed,
 * lib/agents/slots.ts): sent and marked now, with no relay pass's claim round trip and no wait for a pass to be free.
 * Inside a request it is handed to after() as kickedRelay's pass is, so Vercel keeps the invocation alive until it
 * ends. Whatever it does not send stays recorded: marked failed (backoff) or, if this process dies, leased until
 * DIRECT_CLAIM_SECONDS pass, then sent by a relay pass (the sweeper at the latest), under the same event id.
 */
function deliverDirect(rows: ClaimedEvent[]): Promise<RelayResult> {
  const sending = sendClaimed(rows).then((r) => {
    directlySent += r.sent;
    return r;
  });
  try {
    after(sending.then(() => {}, () => {})); // a failure is reported by the caller (lib/outbox.ts deliverClaimed)
  } catch {
    // Outside a request scope: nothing to keep alive.
  }
  return sending;
}

registerOutboxDelivery(deliverDirect);

let directlySent = 0;
/** How many events this process sent directly (deliverDirect) since it started: for bench:slots. */
export function directlySentCount(): number {
  return directlySent;
}
