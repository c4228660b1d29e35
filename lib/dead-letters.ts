// The dead-letter queue: every task that ends `failed` gets one record, filed by the same transaction that fails it
// (fail_task_dead_letter), with the failure in words (lib/failures.ts), the step it failed in, what it cost and the
// last steps of its timeline. The owner reviews them in the morning (console /failed, GET /api/dead-letters) and
// replays (a new linked task, idempotent per Idempotency-Key, decided in replay_dead_letter) or discards them.
import { z } from "zod";
import { encodeKeyset, keysetBound, olderThan } from "@/lib/db/keyset";
import type { AdminClient } from "@/lib/db/admin";
import type { Json } from "@/lib/db/database.types";
import { classifyFailure, FAILURE_KINDS, failureReason } from "@/lib/failures";
import { databaseUnavailable, isDatabaseUnreachable } from "@/lib/db/errors";
import { ApiError } from "@/lib/http/errors";
import { kickOutboxRelay } from "@/lib/outbox";

// ---------------------------------------------------------------------------------------------------------------
// Filing

export interface Filed {
  deadLetterId: string | null;
  /** The status_reason the task got: the failure in one sentence. */
  reason: string;
}

/** How many attempts run-task makes (retries: 4): what a retried failure used up. */
const RUN_ATTEMPTS = 5;

/**
 * Fails the task and files its dead letter (one transaction). `error` is what the run failed with, as the failure
 * handler receives it ({ name, message }). Null when the task had already ended (e.g. cancelled, or filed before).
 */
export async function fileDeadLetter(
  db: AdminClient,
  taskId: string,
  error: { name: string; message: string },
  /** stoppedByLimit: the run was stopped from outside (its time limit), not failed by its retries. */
  opts: { stoppedByLimit?: boolean } = {},
): Promise<Filed | null> {
  const failure = classifyFailure(error);
  // A NonRetriableError (or a refusal of our request) was not retried: saying "after its retries" would be false.
  const retried = !opts.stoppedByLimit && error.name !== "NonRetriableError" && failure.kind !== "provider_refused";
  const attempts = retried ? RUN_ATTEMPTS : 1;
  const reason = opts.stoppedByLimit ? failure.summary : failureReason(failure, { retried, attempts });
  const errorJson: Json = {
    kind: failure.kind,
    message: failure.summary,
    ...(failure.status ? { status: failure.status } : {}),
    retried,
    chain: [{ name: failure.detail.name, message: failure.detail.message, attempts }],
  };
  const { data, error: rpcError } = await db.rpc("fail_task_dead_letter", {
    p_task_id: taskId,
    p_failure_kind: failure.kind,
    p_summary: failure.summary,
    p_error: errorJson,
    p_reason: reason,
    p_attempts: attempts,
  });
  if (rpcError) throw new Error(`fail_task_dead_letter failed: ${rpcError.message}`);
  const row = data?.[0];
  if (!row || row.outcome !== "failed") return null;
  return { deadLetterId: row.dead_letter_id, reason };
}

// ---------------------------------------------------------------------------------------------------------------
// Wire format

export const DEAD_LETTER_STATUSES = ["pending", "replayed", "discarded"] as const;
export type DeadLetterStatus = (typeof DEAD_LETTER_STATUSES)[number];

export const DeadLetterId = z.uuid();

export const ListDeadLettersQuery = z.strictObject({
  status: z.enum(DEAD_LETTER_STATUSES).optional(),
  agent: z.string().max(40).optional(),
  limit: z.coerce.number().int().min(1).max(100).default(20),
  cursor: z.string().max(200).optional(),
});

export const ReplayBody = z.strictObject({
  prompt: z.string().trim().min(1, "prompt must not be empty").max(100_000, "prompt must be at most 100000 characters").optional(),
  agent: z
    .string()
    .regex(/^[a-z][a-z0-9_-]{1,39}$/, { message: "agent must be an agent id such as research or content" })
    .optional(),
});
export type ReplayBody = z.infer<typeof ReplayBody>;

export const DiscardBody = z.strictObject({
  note: z.string().trim().min(1, "note must not be empty").max(2000, "note must be at most 2000 characters").optional(),
});

export interface DeadLetterWire {
  id: string;
  task_id: string;
  agent: string;
  prompt: string;
  input: Json | null;
  pipeline_id: string | null;
  stage: string | null;
  failure_kind: (typeof FAILURE_KINDS)[number] | string;
  /** The failure in one sentence. */
  error_message: string;
  error: Json;
  failed_step: string | null;
  attempts: number;
  cost_micros: number;
  cost_usd: number;
  last_steps: Json;
  status: DeadLetterStatus;
  replayed_by: string | null;
  discard_note: string | null;
  resolved_by: string | null;
  resolved_at: string | null;
  created_at: string;
}

const COLUMNS =
  "id,task_id,agent_id,prompt,input,pipeline_id,stage,failure_kind,summary,error,failed_step,attempts,cost_micros,last_steps,status,replayed_task_id,discard_note,resolved_by,resolved_at,created_at";

interface Row {
  id: string;
  task_id: string;
  agent_id: string;
  prompt: string;
  input: Json | null;
  pipeline_id: string | null;
  stage: string | null;
  failure_kind: string;
  summary: string;
  error: Json;
  failed_step: string | null;
  attempts: number;
  cost_micros: number;
  last_steps: Json;
  status: string;
  replayed_task_id: string | null;
  discard_note: string | null;
  resolved_by: string | null;
  resolved_at: string | null;
  created_at: string;
}

function toWire(r: Row): DeadLetterWire {
  const micros = Number(r.cost_micros);
  return {
    id: r.id,
    task_id: r.task_id,
    agent: r.agent_id,
    prompt: r.prompt,
    input: r.input,
    pipeline_id: r.pipeline_id,
    stage: r.stage,
    failure_kind: r.failure_kind,
    error_message: r.summary,
    error: r.error,
    failed_step: r.failed_step,
    attempts: r.attempts,
    cost_micros: micros,
    cost_usd: micros / 1_000_000,
    last_steps: r.last_steps,
    status: r.status as DeadLetterStatus,
    replayed_by: r.replayed_task_id,
    discard_note: r.discard_note,
    resolved_by: r.resolved_by,
    resolved_at: r.resolved_at,
    created_at: r.created_at,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Reads

export async function getDeadLetter(db: AdminClient, id: string): Promise<DeadLetterWire | null> {
  if (!DeadLetterId.safeParse(id).success) return null;
  const { data, error } = await db.from("dead_letters").select(COLUMNS).eq("id", id).maybeSingle();
  if (error) throw new Error(`dead letter lookup failed: ${error.message}`);
  return data ? toWire(data as unknown as Row) : null;
}

/** Newest first, cursor-paginated on (created_at desc, id desc). */
export async function listDeadLetters(
  db: AdminClient,
  q: { status?: DeadLetterStatus; agent?: string; limit: number; cursor?: string; since?: string },
): Promise<{ dead_letters: DeadLetterWire[]; next_cursor: string | null }> {
  let query = db
    .from("dead_letters")
    .select(COLUMNS)
    .order("created_at", { ascending: false })
    .order("id", { ascending: false })
    .limit(q.limit + 1);
  if (q.status) query = query.eq("status", q.status);
  if (q.agent) query = query.eq("agent_id", q.agent);
  if (q.since) query = query.gte("created_at", q.since);
  if (q.cursor) {
    query = query.lte("created_at", keysetBound(q.cursor)).or(olderThan("created_at", q.cursor));
  }
  const { data, error } = await query;
  if (error) throw new Error(`dead letter list failed: ${error.message}`);
  const rows = (data as unknown as Row[]).map(toWire);
  const page = rows.slice(0, q.limit);
  const last = page[page.length - 1];
  return {
    dead_letters: page,
    next_cursor: rows.length > q.limit && last ? encodeKeyset(last.created_at, last.id) : null,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Actions

export interface Replayed {
  /** The new task; null when a pipeline was replayed from its stage (the stage creates its task when it runs). */
  taskId: string | null;
  /** A failed pipeline stage replays its pipeline from that stage, reusing the finished stages' outputs. */
  pipeline: { id: string; stage: string } | null;
  /** "replayed": now; "same": this Idempotency-Key replayed the entry before (the same task or pipeline). */
  outcome: "replayed" | "same";
}

/**
 * Replays a dead letter as a new task linked both ways (tasks.replay_of, dead_letters.replayed_task_id), then starts
 * it like any new task (task/run.requested), so budgets, concurrency and approvals apply exactly as to new work.
 * Throws ApiError 404 (unknown), 409 (already replayed or discarded, saying which), 400 (unknown agent), 503 (the
 * database is unreachable: nothing was recorded, retry with the same Idempotency-Key). The new task's start event
 * is recorded with it (replay_dead_letter_announced) and sent by the outbox relay (docs/outbox.md).
 */
export async function replayDeadLetter(
  db: AdminClient,
  id: string,
  body: ReplayBody,
  who: { apiKeyId: string | null; idempotencyKey: string | null; actor: string },
  opts: { relay?: "background" | "none" } = {},
): Promise<Replayed> {
  if (!DeadLetterId.safeParse(id).success) throw new ApiError(404, "not_found", `No dead letter with id '${id.slice(0, 64)}'`);
  const res = await db.rpc("replay_dead_letter_announced", {
    p_id: id,
    p_prompt: body.prompt ?? (null as unknown as string),
    p_agent_id: body.agent ?? (null as unknown as string),
    p_api_key_id: who.apiKeyId ?? (null as unknown as string),
    p_idempotency_key: who.idempotencyKey ?? (null as unknown as string),
    p_actor: who.actor,
  });
  const { data, error } = res;
  if (error) {
    if (isDatabaseUnreachable(res)) throw databaseUnavailable();
    if (error.code === "NSA01") {
      throw new ApiError(400, "invalid_request", `Invalid request body: agent: unknown or disabled agent '${body.agent}'`, [
        { field: "agent", message: `unknown or disabled agent '${body.agent}'` },
      ]);
    }
    throw new Error(`replay_dead_letter_announced failed: ${error.message}`);
  }
  const row = data?.[0];
  if (!row || row.outcome === "not_found") throw new ApiError(404, "not_found", `No dead letter with id '${id}'`);
  if (row.outcome === "already_replayed") {
    throw new ApiError(409, "already_replayed", `This dead letter was already replayed as task ${row.task_id}`, { status: "replayed", replayed_by: row.task_id });
  }
  if (row.outcome === "discarded") throw new ApiError(409, "already_discarded", "This dead letter was discarded", { status: "discarded" });
  if (row.outcome === "pipeline_not_failed") {
    throw new ApiError(409, "pipeline_not_failed", "The pipeline of this stage is no longer failed (it was replayed or finished another way)", { pipeline_id: row.pipeline_id });
  }
  const pipeline = row.pipeline_id && row.stage ? { id: row.pipeline_id, stage: row.stage } : null;
  if (row.outcome === "same") return { taskId: row.task_id, pipeline, outcome: "same" };
  // Recorded with its start event (a task's, or the reopened stage's) in one transaction; the relay sends it.
  if (opts.relay !== "none") void kickOutboxRelay();
  return { taskId: row.task_id, pipeline, outcome: "replayed" };
}

export async function discardDeadLetter(db: AdminClient, id: string, note: string | null, actor: string): Promise<void> {
  if (!DeadLetterId.safeParse(id).success) throw new ApiError(404, "not_found", `No dead letter with id '${id.slice(0, 64)}'`);
  const { data, error } = await db.rpc("discard_dead_letter", { p_id: id, p_note: note ?? (null as unknown as string), p_actor: actor });
  if (error) throw new Error(`discard_dead_letter failed: ${error.message}`);
  const row = data?.[0];
  if (!row || row.outcome === "not_found") throw new ApiError(404, "not_found", `No dead letter with id '${id}'`);
  if (row.outcome === "already_replayed") {
    throw new ApiError(409, "already_replayed", `This dead letter was already replayed as task ${row.task_id}`, { status: "replayed", replayed_by: row.task_id });
  }
  if (row.outcome === "already_discarded") throw new ApiError(409, "already_discarded", "This dead letter was already discarded", { status: "discarded" });
}
