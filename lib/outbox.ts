// The submission outbox, lib's side (docs/outbox.md). Record, then announce: work and the event that starts it are
// written in one Postgres transaction, and a relay (inngest/outbox-relay.ts) sends the pending events later. So
// `lib/` never imports the Inngest client, and nothing recorded is lost when the process dies or the event API is
// down: the relay runs right after the response (Next's `after()`) and a sweeper cron picks up anything left.
//
// How to record work that must start something:
//   - Best: in SQL, inside the function that records the work — `perform public.outbox_record(name, data, id)`
//     (see submit_task in supabase/migrations/20261129100000_outbox.sql). One round trip, one transaction.
//   - Otherwise `recordEvents(db, [...])` after the write, when losing the event in between is covered some
//     other way (e.g. notifications, which a sweeper re-announces).
// Then call `kickOutboxRelay()` (or, in a route handler, `relayAfterResponse()` from inngest/outbox-relay.ts).
import type { AdminClient } from "@/lib/db/admin";
import type { Json } from "@/lib/db/database.types";
import type { EventName } from "@/lib/events";
import { z } from "zod";

export interface OutboxEvent {
  name: EventName;
  data: { [key: string]: Json };
  /** Stable event id: Inngest drops a repeat for 24 h, and the outbox records an id once. */
  id: string;
}

/** Records events in the outbox (a repeated id is recorded once). Returns how many were new. */
export async function recordEvents(db: AdminClient, events: OutboxEvent[]): Promise<number> {
  if (events.length === 0) return 0;
  const { data, error } = await db.rpc("outbox_record_many", { p_events: events as unknown as Json });
  if (error) throw new Error(`outbox_record_many failed: ${error.message}`);
  return data ?? 0;
}

export interface RelayResult {
  sent: number;
  failed: number;
}

export interface KickOptions {
  /** The kick is for a wake-up of a run already under way (a slot handed over, a cancellation): the relay sends it in
   * a small pass of its own instead of after the round of new work it may be in the middle of. */
  wakeUp?: boolean;
}

/** A relay pass: sends what is pending. Implemented in inngest/outbox-relay.ts, which registers itself here. */
export type OutboxRelay = (o?: KickOptions) => Promise<RelayResult>;

// On globalThis, not in a module variable: Next may load this module more than once in one process (one copy per
// bundle layer), and the relay registered by any of them should serve all.
const REGISTRY = Symbol.for("nightshift.outbox.relay");
type Registry = { [REGISTRY]?: OutboxRelay };

/** Called by inngest/outbox-relay.ts when it loads. Dependency inversion: lib/ never imports inngest/. */
export function registerOutboxRelay(relay: OutboxRelay): void {
  (globalThis as Registry)[REGISTRY] = relay;
}

/** An outbox row claimed (leased) for sending: by a relay's claim, or by the call that recorded it (a release's
 * wake-ups, `release_agent_slot_direct`). */
export interface ClaimedEvent {
  id: number;
  event_id: string;
  name: string;
  data: Json;
}

const claimedEventsSchema = z.array(
  z.object({ id: z.number().int(), event_id: z.string().min(1), name: z.string().min(1), data: z.json() }),
);

/** The rows a recording RPC claimed for its caller to send (its `wakeups` jsonb; null or absent: none). */
export function claimedEvents(json: Json | null | undefined): ClaimedEvent[] {
  const parsed = claimedEventsSchema.safeParse(json ?? []);
  if (!parsed.success) throw new Error(`claimed outbox rows have an unexpected shape: ${parsed.error.message}`);
  return parsed.data as ClaimedEvent[];
}

/** Sends rows the caller claimed itself and marks them sent (or failed, for the relay to retry). Implemented in
 * inngest/outbox-relay.ts, which registers itself here. */
export type OutboxDelivery = (rows: ClaimedEvent[]) => Promise<RelayResult>;

const DELIVERY = Symbol.for("nightshift.outbox.delivery");
type DeliveryRegistry = { [DELIVERY]?: OutboxDelivery };

/** Called by inngest/outbox-relay.ts when it loads. */
export function registerOutboxDelivery(delivery: OutboxDelivery): void {
  (globalThis as DeliveryRegistry)[DELIVERY] = delivery;
}

/** How long a caller holds the wake-ups it records and claims to send them itself: longer than one send may take
 * (10 s), so the relay does not send them too meanwhile; a caller that died leaves them to the relay's sweep after. */
export const DIRECT_CLAIM_SECONDS = 15;

/** The lease to ask a recording RPC for (its `p_claim_seconds`): 0 when nothing in this process can send events —
 * then nothing is claimed and the relay sends them. */
export function directClaimSeconds(): number {
  return (globalThis as DeliveryRegistry)[DELIVERY] ? DIRECT_CLAIM_SECONDS : 0;
}

/**
 * Sends rows this process claimed (a hand-over's wake-ups) now, without waiting for a relay pass, and marks them
 * sent. Never rejects: a row not sent stays recorded (marked failed, or leased until DIRECT_CLAIM_SECONDS pass) and
 * the relay's sweep sends it.
 */
export function deliverClaimed(rows: ClaimedEvent[]): Promise<RelayResult> {
  const delivery = (globalThis as DeliveryRegistry)[DELIVERY];
  if (rows.length === 0) return Promise.resolve({ sent: 0, failed: 0 });
  if (!delivery) return Promise.resolve({ sent: 0, failed: rows.length });
  return delivery(rows).catch((err) => {
    console.warn(`[outbox] direct send failed: ${err instanceof Error ? err.message : String(err)}; the relay will retry`);
    return { sent: 0, failed: rows.length };
  });
}

/**
 * Starts a relay pass in the background, if a relay is registered in this process, and returns its promise (which
 * never rejects). Only an accelerator: whatever it does not send, the sweeper cron does.
 */
export function kickOutboxRelay(o?: KickOptions): Promise<RelayResult> {
  const relay = (globalThis as Registry)[REGISTRY];
  if (!relay) return Promise.resolve({ sent: 0, failed: 0 });
  return relay(o).catch((err) => {
    console.warn(`[outbox] relay pass failed: ${err instanceof Error ? err.message : String(err)}; the sweeper will retry`);
    return { sent: 0, failed: 0 };
  });
}
