// Task records: creation with idempotency (decided inside Postgres by `create_task`), reads for the API,
// and the wire shape. Route handlers and Inngest functions compose these; none of them talk SQL.
import { hash } from "node:crypto";
import canonicalize from "canonicalize";
import type { AdminClient } from "@/lib/db/admin";
import type { Database, Json } from "@/lib/db/database.types";
import { ApiError } from "@/lib/http/errors";
import { encodeKeyset, keysetBound, olderThan } from "@/lib/db/keyset";
import type { CreateTaskBody, TaskMode, TaskStatus } from "./schema";

type TaskRow = Database["public"]["Tables"]["tasks"]["Row"];

export interface CreatedTask {
  taskId: string;
  outcome: "created" | "replayed";
  status: TaskStatus;
}

/** Hash of the request as the client meant it, independent of key order and whitespace. */
export function requestHash(body: CreateTaskBody): string {
  return hash("sha256", canonicalize(body) ?? "", "hex");
}

export async function insertTask(
  db: AdminClient,
  body: CreateTaskBody,
  /** The key the request came with; null for tasks from the console, cron or app events. */
  apiKeyId: string | null,
  idempotencyKey: string | null,
): Promise<CreatedTask> {
  const { data, error } = await db.rpc("create_task", {
    p_agent_id: body.agent,
    p_prompt: body.prompt,
    p_input: (body.input ?? null) as Json,
    p_priority: body.priority ?? 0,
    p_mode: body.mode ?? (null as unknown as TaskMode), // no mode: the agent's default mode
    p_require_approval: body.require_approval ?? false,
    p_callback_url: body.callback_url ?? (null as unknown as string),
    p_api_key_id: apiKeyId ?? (null as unknown as string),
    p_idempotency_key: idempotencyKey ?? (null as unknown as string),
    p_request_hash: requestHash(body),
  });
  if (error) {
    if (error.code === "NSA01") {
      throw new ApiError(400, "invalid_request", `Invalid request body: agent: unknown or disabled agent '${body.agent}'`, [
        { field: "agent", message: `unknown or disabled agent '${body.agent}'` },
      ]);
    }
    throw new Error(`create_task failed: ${error.message}`);
  }
  const row = Array.isArray(data) ? data[0] : data;
  if (!row) throw new Error("create_task returned no row");
  if (row.outcome === "conflict") {
    throw new ApiError(
      409,
      "idempotency_conflict",
      "This Idempotency-Key was already used with a different request body",
      { task_id: row.task_id },
    );
  }
  return { taskId: row.task_id, outcome: row.outcome as CreatedTask["outcome"], status: row.status };
}

export interface TaskWire {
  task_id: string;
  status: TaskStatus;
  status_reason: string | null;
  agent: string;
  prompt: string;
  input: Json | null;
  priority: number;
  mode: TaskMode;
  require_approval: boolean;
  /** The peer deployment that receives the result when the task completes (null: none). */
  next_hop: string | null;
  /** done: model turns finished; total: the agent's turn limit (max_turns when the task was created). */
  progress: { done: number; total: number };
  /** The task's approvals (visible ones, oldest first): decide a pending one with POST /api/approvals/:id. */
  approvals: TaskApprovalRef[];
  /** The approval waiting for a decision now, if any. */
  pending_approval_id: string | null;
  result: Json | null;
  error: Json | null;
  cost_usd: number;
  cost_micros: number;
  /** The part of cost_micros that is estimated (calls whose answer was lost; the provider most likely billed them). */
  estimated_cost_micros: number;
  /** When the result is needed (mode auto uses a batch only while it leaves room), or null. */
  deadline: string | null;
  /** What the Batches API's discount saved on this task's calls (full price − paid). */
  batch_saving_micros: number;
  created_at: string;
  updated_at: string;
  started_at: string | null;
  finished_at: string | null;
}

export interface TaskApprovalRef {
  approval_id: string;
  stage: string;
  revision: number;
  status: string;
  requested_at: string;
  decided_at: string | null;
}

// The task's approvals come embedded (one round trip): PostgREST follows approvals.task_id.
const WIRE_COLUMNS =
  "id,status,status_reason,agent_id,prompt,input,priority,mode,require_approval,next_hop,progress_done,progress_total,result,error,cost_micros,estimated_cost_micros,deadline,batch_saving_micros,created_at,updated_at,started_at,finished_at," +
  "approvals(id,stage,revision,status,requested_at,decided_at,visible_at)";

interface EmbeddedApproval {
  id: string;
  stage: string;
  revision: number;
  status: string;
  requested_at: string;
  decided_at: string | null;
  visible_at: string | null;
}

type WireRow = Pick<
  TaskRow,
  | "id"
  | "status"
  | "status_reason"
  | "agent_id"
  | "prompt"
  | "input"
  | "priority"
  | "mode"
  | "require_approval"
  | "progress_done"
  | "progress_total"
  | "result"
  | "error"
  | "cost_micros"
  | "estimated_cost_micros"
  | "deadline"
  | "batch_saving_micros"
  | "created_at"
  | "updated_at"
  | "started_at"
  | "finished_at"
> & { approvals?: EmbeddedApproval[] | null; next_hop?: string | null };

export function toWire(row: WireRow): TaskWire {
  const micros = Number(row.cost_micros);
  // An approval becomes visible (and decidable) once its run waits for it; an invisible one is not shown.
  const approvals = (row.approvals ?? [])
    .filter((a) => a.visible_at !== null)
    .sort((a, b) => a.requested_at.localeCompare(b.requested_at) || a.revision - b.revision)
    .map((a) => ({ approval_id: a.id, stage: a.stage, revision: a.revision, status: a.status, requested_at: a.requested_at, decided_at: a.decided_at }));
  return {
    task_id: row.id,
    status: row.status,
    status_reason: row.status_reason,
    agent: row.agent_id,
    prompt: row.prompt,
    input: row.input,
    priority: row.priority,
    mode: row.mode,
    require_approval: row.require_approval,
    next_hop: row.next_hop ?? null,
    progress: { done: row.progress_done, total: row.progress_total },
    approvals,
    pending_approval_id: approvals.find((a) => a.status === "pending")?.approval_id ?? null,
    result: row.result,
    error: row.error,
    // Display only: money stays integer micro-dollars everywhere else.
    cost_usd: micros / 1_000_000,
    cost_micros: micros,
    estimated_cost_micros: Number(row.estimated_cost_micros),
    deadline: row.deadline,
    batch_saving_micros: Number(row.batch_saving_micros),
    created_at: row.created_at,
    updated_at: row.updated_at,
    started_at: row.started_at,
    finished_at: row.finished_at,
  };
}

export async function getTask(db: AdminClient, taskId: string): Promise<TaskWire | null> {
  const { data, error } = await db.from("tasks").select(WIRE_COLUMNS).eq("id", taskId).maybeSingle();
  if (error) throw new Error(`task lookup failed: ${error.message}`);
  return data ? toWire(data as unknown as WireRow) : null;
}

// Cursor pagination on (created_at desc, id desc): stable while new tasks keep arriving (lib/db/keyset.ts).
export function encodeCursor(row: { created_at: string; task_id: string }): string {
  return encodeKeyset(row.created_at, row.task_id);
}

/**
 * The most a page of the task list carries in its tasks' big fields (prompt, input, result, error): a page ends
 * before the task that would pass it (never before its first task), and `next_cursor` goes on from there. Without it
 * a page of 100 tasks with ~256 KB inputs was a 20 MB answer built in the server's memory, and 20 such lists at once
 * took the app from 0.5 to 1.8 GB (docs/security.md, session 9).
 */
export const MAX_PAGE_BYTES = 2 * 1024 * 1024;

export async function listTasks(
  db: AdminClient,
  q: { status?: TaskStatus; agent?: string; limit: number; cursor?: string },
  maxPageBytes = MAX_PAGE_BYTES,
): Promise<{ tasks: TaskWire[]; next_cursor: string | null }> {
  // First the page's keys and sizes (small), then the chosen tasks whole: the big fields of tasks past the byte
  // budget are never read.
  let query = db
    .from("tasks")
    .select("id,created_at,bytes:task_wire_bytes")
    .order("created_at", { ascending: false })
    .order("id", { ascending: false })
    .limit(q.limit + 1);
  if (q.status) query = query.eq("status", q.status);
  if (q.agent) query = query.eq("agent_id", q.agent);
  if (q.cursor) {
    query = query.lte("created_at", keysetBound(q.cursor)).or(olderThan("created_at", q.cursor));
  }
  const { data, error } = await query;
  if (error) throw new Error(`task list failed: ${error.message}`);
  const keys = data as unknown as { id: string; created_at: string; bytes: number | string }[];
  let n = 0;
  for (let bytes = 0; n < Math.min(q.limit, keys.length); n++) {
    bytes += Number(keys[n]!.bytes);
    if (n > 0 && bytes > maxPageBytes) break;
  }
  const chosen = keys.slice(0, n);
  if (chosen.length === 0) return { tasks: [], next_cursor: null };
  let second = db.from("tasks").select(WIRE_COLUMNS).in("id", chosen.map((k) => k.id));
  // The filter again: a task whose status changed between the two reads is not listed under its old status.
  if (q.status) second = second.eq("status", q.status);
  if (q.agent) second = second.eq("agent_id", q.agent);
  const full = await second;
  if (full.error) throw new Error(`task list failed: ${full.error.message}`);
  const byId = new Map((full.data as unknown as WireRow[]).map((r) => [r.id, r]));
  // A task deleted, or moved out of the filter, between the two reads is left out; the order is the first read's.
  const page = chosen.flatMap((k) => {
    const row = byId.get(k.id);
    return row ? [toWire(row)] : [];
  });
  const last = chosen[chosen.length - 1]!;
  return { tasks: page, next_cursor: keys.length > n ? encodeCursor({ created_at: last.created_at, task_id: last.id }) : null };
}
