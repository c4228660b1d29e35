// Agent to agent across deployments: a task may name a peer (another Nightshift deployment, a row of `peers`) as
// its next hop. When the task completes, its result is delivered to the peer as a signed Standard Webhooks request
// to the peer's inbound route (`<base_url>/api/webhooks/<source>`), signed with the `whsec_` secret both sides
// share (the peer row names the variable that holds it; the peer's webhook source names its own variable holding
// the same secret). The webhook-id is `msg_task_hop_<task id>` on every attempt, so the peer's (source, webhook-id)
// deduplication makes one task there however often the hop is retried or replayed. Delivery is the same durable,
// recorded, breaker-guarded path as task callbacks (lib/webhooks/outbound.ts). Only a completed task hops: a
// failed, stopped, rejected or cancelled one has no result for the next agent.
import type { AdminClient } from "@/lib/db/admin";
import { isStandardWebhookSecret } from "@/lib/env";
import type { Delivery } from "./outbound";

export const taskHopMessageId = (taskId: string) => `msg_task_hop_${taskId}`;

/** Opens (or finds) the hop delivery of a completed task; null when there is nothing to send. */
export async function openTaskHop(db: AdminClient, taskId: string): Promise<{ id: string; peer: string } | null> {
  const { data, error } = await db.rpc("open_task_hop", { p_task_id: taskId });
  if (error) throw new Error(`open_task_hop failed: ${error.message}`);
  const row = (Array.isArray(data) ? data[0] : data) as Delivery | undefined;
  if (!row) return null;
  return { id: row.id, peer: (JSON.parse(row.payload) as { peer: string }).peer };
}

/** The configured peers (no secrets: the variable's name, and whether it holds a usable secret here). */
export async function listPeers(db: AdminClient) {
  const { data, error } = await db.from("peers").select("name,description,base_url,source,secret_env_name,enabled,created_at,updated_at").order("name");
  if (error) throw new Error(`peers read failed: ${error.message}`);
  return (data ?? []).map((p) => ({
    ...p,
    url: `${p.base_url}/api/webhooks/${p.source}`,
    secret_set: isStandardWebhookSecret(process.env[p.secret_env_name]?.trim() ?? ""),
  }));
}
