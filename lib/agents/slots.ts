// Per-agent concurrency slots (agents.concurrency), decided in Postgres (migration 20261129100100_slot_waiters.sql).
// A task that finds every slot taken joins its agent's line (priority, then age) and waits for the event
// `agent/slot.released`, which whoever gives a slot back records for the first in line, with the slot itself: the
// slot is handed over, never left free while tasks wait. A durable timeout on the wait is the fallback.
// The release (and the waiting task's re-check) also claims the wake-ups it records, in its transaction, and this
// process sends them at once (deliverClaimed) instead of leaving them to a relay pass's claim (migration
// 20261203130000_slot_handoff_direct.sql); the outbox row stays the durable fallback.
import type { AdminClient } from "@/lib/db/admin";
import { claimedEvents, deliverClaimed, directClaimSeconds, kickOutboxRelay } from "@/lib/outbox";

export interface SlotClaim {
  ok: boolean;
  holders: number;
  limit: number;
}

/** Takes or renews the task's slot; when none is free (or others are ahead in line), the task joins the line. */
export async function acquireSlot(
  db: AdminClient,
  args: { agentId: string; taskId: string; leaseSeconds: number; now?: Date },
): Promise<SlotClaim> {
  const { data, error } = await db.rpc("claim_agent_slot", {
    p_agent_id: args.agentId,
    p_task_id: args.taskId,
    p_lease_seconds: args.leaseSeconds,
    ...(args.now ? { p_now: args.now.toISOString() } : {}),
  });
  if (error) throw new Error(`claim_agent_slot failed: ${error.message}`);
  const row = data?.[0];
  if (!row) throw new Error("claim_agent_slot returned no row");
  // A claim may hand free slots to waiters ahead of this task: their wake-ups are in the outbox.
  if (!row.ok) void kickOutboxRelay({ wakeUp: true });
  return { ok: row.ok, holders: row.holders, limit: row.max_concurrency };
}

/** Gives the slot back (the task ends or starts waiting) and hands it to the next in line; true when it held one. */
export async function releaseSlot(db: AdminClient, taskId: string): Promise<boolean> {
  const { data, error } = await db.rpc("release_agent_slot_direct", { p_task_id: taskId, p_claim_seconds: directClaimSeconds() });
  if (error) throw new Error(`release_agent_slot_direct failed: ${error.message}`);
  const row = data?.[0];
  const wakeups = claimedEvents(row?.wakeups);
  // The slot went to the next in line: send its wake-up now, in the background (the step goes on meanwhile).
  if (wakeups.length > 0) void deliverClaimed(wakeups);
  // Not claimed here (nothing in this process can send events): the relay sends it (the sweeper, within a minute).
  if (row && row.handed > wakeups.length) void kickOutboxRelay({ wakeUp: true });
  return row?.held === true;
}

/**
 * For a task whose wait for `agent/slot.released` is registered: when the slot was handed over before the wait could
 * hear it (or one is free now), records the wake-up again under `eventId` and sends it. True when it did.
 */
export async function recheckSlot(db: AdminClient, args: { agentId: string; taskId: string; eventId: string }): Promise<boolean> {
  const { data, error } = await db.rpc("recheck_agent_slot_direct", {
    p_agent_id: args.agentId,
    p_task_id: args.taskId,
    p_event_id: args.eventId,
    p_claim_seconds: directClaimSeconds(),
  });
  if (error) throw new Error(`recheck_agent_slot_direct failed: ${error.message}`);
  const row = data?.[0];
  const wakeups = claimedEvents(row?.wakeups);
  if (wakeups.length > 0) await deliverClaimed(wakeups);
  else if (row?.woken) await kickOutboxRelay({ wakeUp: true });
  return row?.woken === true;
}
