// submitTask: THE way to queue a task — from the API, the console, schedules, webhooks, replays and app events.
// One Postgres call (submit_task) verifies the API key (when there is one), records the task with create_task's
// idempotency, and records its start event `task/run.requested` (id task-run-<task id>) in the outbox, all in one
// transaction. The relay sends the event afterwards (docs/outbox.md); a failing event API never removes the
// task, so an idempotent replay can never answer for a task that later disappears.
import type { PresentedKey } from "@/lib/api-keys";
import type { AdminClient } from "@/lib/db/admin";
import { Constants, type Json } from "@/lib/db/database.types";
import { directRpc } from "@/lib/db/direct-rpc";
import { databaseUnavailable, isDatabaseUnreachable } from "@/lib/db/errors";
import { unauthorized } from "@/lib/http/auth";
import { ApiError } from "@/lib/http/errors";
import { kickOutboxRelay } from "@/lib/outbox";
import { z } from "zod";
import type { CreateTaskBody, TaskMode } from "./schema";
import { requestHash, type CreatedTask } from "./service";

export interface SubmitOptions {
  /**
   * "background" (default): start a relay pass in this process right away. "none": the caller relays itself —
   * a route handler does it after its response (relayAfterResponse), to keep the hot path at one round trip.
   */
  relay?: "background" | "none";
}

/** submit_task's (and submit_task_with_hop's) one row; task_id and status are null for 'unauthorized'. */
const SubmitRows = z
  .array(
    z.object({
      task_id: z.string().nullable(),
      outcome: z.enum(["created", "replayed", "conflict", "unauthorized"]),
      status: z.enum(Constants.public.Enums.task_status).nullable(),
    }),
  )
  .min(1);

export async function submitTask(
  db: AdminClient,
  body: CreateTaskBody,
  /**
   * The API key the request presented (verified inside the same call), or the id of a key the caller verified
   * already (it must still be live), or null for the console, cron, webhooks and app events.
   */
  apiKey: PresentedKey | string | null,
  idempotencyKey: string | null,
  opts: SubmitOptions = {},
): Promise<CreatedTask> {
  const args = {
    p_key_id: (typeof apiKey === "string" ? apiKey : apiKey?.id) ?? (null as unknown as string),
    p_key_hash: (typeof apiKey === "string" ? null : apiKey?.hash) ?? (null as unknown as string),
    p_agent_id: body.agent,
    p_prompt: body.prompt,
    p_input: (body.input ?? null) as Json,
    p_priority: body.priority ?? 0,
    // No mode: the agent's default mode (create_task).
    p_mode: body.mode ?? (null as unknown as TaskMode),
    p_require_approval: body.require_approval ?? false,
    p_callback_url: body.callback_url ?? (null as unknown as string),
    p_idempotency_key: idempotencyKey ?? (null as unknown as string),
    p_request_hash: requestHash(body),
    ...(body.deadline ? { p_deadline: new Date(body.deadline).toISOString() } : {}),
  };
  // A next hop (a peer deployment) is recorded with the task in the same transaction (docs/webhooks.md).
  // The direct call when this client has one (lib/db/direct-rpc.ts: the same request, less CPU), else supabase-js.
  const hop = body.next_hop;
  const fn = hop ? "submit_task_with_hop" : "submit_task";
  const res = hop
    ? ((await directRpc(db, fn, { ...args, p_next_hop: hop })) ?? (await db.rpc("submit_task_with_hop", { ...args, p_next_hop: hop })))
    : ((await directRpc(db, fn, args)) ?? (await db.rpc("submit_task", args)));
  const { data, error } = res;
  if (error) {
    if (isDatabaseUnreachable(res)) throw databaseUnavailable();
    if (error.code === "NSW01") {
      throw new ApiError(400, "invalid_request", `Invalid request body: next_hop: unknown or disabled peer '${body.next_hop}'`, [
        { field: "next_hop", message: `unknown or disabled peer '${body.next_hop}'` },
      ]);
    }
    if (error.code === "NSA01") {
      throw new ApiError(400, "invalid_request", `Invalid request body: agent: unknown or disabled agent '${body.agent}'`, [
        { field: "agent", message: `unknown or disabled agent '${body.agent}'` },
      ]);
    }
    throw new Error(`submit_task failed: ${error.message}`);
  }
  const parsed = SubmitRows.safeParse(data);
  if (!parsed.success) throw new Error(`${fn} returned an unexpected answer: ${parsed.error.message}`);
  const row = parsed.data[0]!;
  if (row.outcome === "unauthorized") throw unauthorized();
  if (row.outcome === "conflict") {
    throw new ApiError(409, "idempotency_conflict", "This Idempotency-Key was already used with a different request body", {
      task_id: row.task_id,
    });
  }
  if (row.outcome === "created" && opts.relay !== "none") void kickOutboxRelay();
  if (row.task_id === null || row.status === null) throw new Error(`${fn} returned no task for outcome ${row.outcome}`);
  return { taskId: row.task_id, outcome: row.outcome, status: row.status };
}
