// Per-agent concurrency slots (agents.concurrency), decided in Postgres: see acquire_agent_slot.
import type { AdminClient } from "@/lib/db/admin";

export interface SlotClaim {
  ok: boolean;
  holders: number;
  limit: number;
}

export async function acquireSlot(
  db: AdminClient,
  args: { agentId: string; taskId: string; leaseSeconds: number; now?: Date },
): Promise<SlotClaim> {
  const { data, error } = await db.rpc("acquire_agent_slot", {
    p_agent_id: args.agentId,
    p_task_id: args.taskId,
    p_lease_seconds: args.leaseSeconds,
    ...(args.now ? { p_now: args.now.toISOString() } : {}),
  });
  if (error) throw new Error(`acquire_agent_slot failed: ${error.message}`);
  const row = data?.[0];
  if (!row) throw new Error("acquire_agent_slot returned no row");
  return { ok: row.ok, holders: row.holders, limit: row.max_concurrency };
}

/** Gives the slot back (the task ends or starts waiting); true when it held one. */
export async function releaseSlot(db: AdminClient, taskId: string): Promise<boolean> {
  const { data, error } = await db.rpc("release_agent_slot", { p_task_id: taskId });
  if (error) throw new Error(`release_agent_slot failed: ${error.message}`);
  return data === true;
}
