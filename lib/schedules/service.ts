// Schedules as data: CRUD for the API and the console, and what the every-minute dispatcher does. The dispatcher
// reads the due schedules and plans each firing with croner (lib/schedules/cron.ts); fire_schedule then decides in
// Postgres — compare-and-set on next_run_at, the task created with the idempotency key
// `schedule:<id>:<scheduled_for>`, its start event put in the outbox and the firing recorded, in one transaction —
// so overlapping dispatchers and retried firings make exactly one task per firing. After downtime the latest
// missed firing runs once and the ones before it are recorded as skipped.
import type { AdminClient } from "@/lib/db/admin";
import type { Database, Json } from "@/lib/db/database.types";
import { ApiError } from "@/lib/http/errors";
import { kickOutboxRelay } from "@/lib/outbox";
import { requestHash } from "@/lib/tasks/service";
import { submitTask } from "@/lib/tasks/submit";
import type { CreatedTask } from "@/lib/tasks/service";
import { localDate, nextFiring, planFiring } from "./cron";
import type { CreateScheduleBody, UpdateScheduleBody } from "./schema";
import type { TaskMode } from "@/lib/tasks/schema";

type Row = Database["public"]["Tables"]["schedules"]["Row"];

export interface ScheduleWire {
  id: string;
  name: string;
  agent: string;
  cron: string;
  timezone: string;
  prompt: string;
  input: Json | null;
  mode: TaskMode;
  require_approval: boolean;
  enabled: boolean;
  next_run_at: string | null;
  last_run_at: string | null;
  last_scheduled_for: string | null;
  last_task: { task_id: string; status: string } | null;
  skipped_total: number;
  created_at: string;
  updated_at: string;
}

const COLUMNS = "*, last_task:tasks!schedules_last_task_id_fkey(id,status)";

type RowWithTask = Row & { last_task: { id: string; status: string } | null };

function toWire(r: RowWithTask): ScheduleWire {
  return {
    id: r.id,
    name: r.name,
    agent: r.agent_id,
    cron: r.cron,
    timezone: r.timezone,
    prompt: r.prompt_template,
    input: r.input,
    mode: r.mode,
    require_approval: r.require_approval,
    enabled: r.enabled,
    next_run_at: r.next_run_at,
    last_run_at: r.last_run_at,
    last_scheduled_for: r.last_scheduled_for,
    last_task: r.last_task ? { task_id: r.last_task.id, status: r.last_task.status } : null,
    skipped_total: r.skipped_total,
    created_at: r.created_at,
    updated_at: r.updated_at,
  };
}

function dbError(error: { code?: string; message: string }, body: { agent?: string; name?: string }): never {
  if (error.code === "23503") {
    throw new ApiError(400, "invalid_request", `Invalid request body: agent: unknown agent '${body.agent}'`, [{ field: "agent", message: `unknown agent '${body.agent}'` }]);
  }
  if (error.code === "23505") throw new ApiError(409, "conflict", `A schedule named '${body.name}' exists already`, [{ field: "name", message: "must be unique" }]);
  throw new Error(`schedules write failed: ${error.message}`);
}

export async function listSchedules(db: AdminClient): Promise<ScheduleWire[]> {
  const { data, error } = await db.from("schedules").select(COLUMNS).order("name");
  if (error) throw new Error(`schedules read failed: ${error.message}`);
  return (data as unknown as RowWithTask[]).map(toWire);
}

export async function getSchedule(db: AdminClient, id: string): Promise<ScheduleWire | null> {
  const { data, error } = await db.from("schedules").select(COLUMNS).eq("id", id).maybeSingle();
  if (error) throw new Error(`schedule read failed: ${error.message}`);
  return data ? toWire(data as unknown as RowWithTask) : null;
}

export async function createSchedule(db: AdminClient, body: CreateScheduleBody, now = new Date()): Promise<ScheduleWire> {
  const { data, error } = await db
    .from("schedules")
    .insert({
      name: body.name,
      agent_id: body.agent,
      cron: body.cron,
      timezone: body.timezone,
      prompt_template: body.prompt,
      input: (body.input ?? null) as Json,
      mode: body.mode,
      require_approval: body.require_approval,
      enabled: body.enabled,
      next_run_at: body.enabled ? nextFiring(body.cron, body.timezone, now)?.toISOString() ?? null : null,
    })
    .select(COLUMNS)
    .single();
  if (error) dbError(error, body);
  return toWire(data as unknown as RowWithTask);
}

/** Changes a schedule; a new cron, time zone or enabling recomputes next_run_at from now (no catch-up). */
export async function updateSchedule(db: AdminClient, id: string, body: UpdateScheduleBody, now = new Date()): Promise<ScheduleWire | null> {
  const current = await getSchedule(db, id);
  if (!current) return null;
  const cronExpr = body.cron ?? current.cron;
  const tz = body.timezone ?? current.timezone;
  const enabled = body.enabled ?? current.enabled;
  const timing = body.cron !== undefined || body.timezone !== undefined || body.enabled !== undefined;
  const patch: Database["public"]["Tables"]["schedules"]["Update"] = {
    ...(body.name !== undefined ? { name: body.name } : {}),
    ...(body.agent !== undefined ? { agent_id: body.agent } : {}),
    ...(body.cron !== undefined ? { cron: body.cron } : {}),
    ...(body.timezone !== undefined ? { timezone: body.timezone } : {}),
    ...(body.prompt !== undefined ? { prompt_template: body.prompt } : {}),
    ...(body.input !== undefined ? { input: body.input as Json } : {}),
    ...(body.mode !== undefined ? { mode: body.mode } : {}),
    ...(body.require_approval !== undefined ? { require_approval: body.require_approval } : {}),
    ...(body.enabled !== undefined ? { enabled } : {}),
  };
  if (timing && (!enabled || !current.enabled || body.cron !== undefined || body.timezone !== undefined)) {
    patch.next_run_at = enabled ? nextFiring(cronExpr, tz, now)?.toISOString() ?? null : null;
  }
  const { data, error } = await db.from("schedules").update(patch).eq("id", id).select(COLUMNS).maybeSingle();
  if (error) dbError(error, { agent: body.agent, name: body.name });
  return data ? toWire(data as unknown as RowWithTask) : null;
}

export async function deleteSchedule(db: AdminClient, id: string): Promise<boolean> {
  const { data, error } = await db.from("schedules").delete().eq("id", id).select("id");
  if (error) throw new Error(`schedule delete failed: ${error.message}`);
  return (data ?? []).length > 0;
}

function promptFor(row: Pick<Row, "prompt_template" | "timezone">, scheduledFor: Date): string {
  return row.prompt_template
    .replace(/\{\{\s*date\s*\}\}/g, localDate(scheduledFor, row.timezone))
    .replace(/\{\{\s*scheduled_for\s*\}\}/g, scheduledFor.toISOString());
}

/** Runs a schedule now (outside its cron): a task like its firings, with the caller's idempotency key if any. */
export async function runScheduleNow(
  db: AdminClient,
  id: string,
  apiKeyId: string | null,
  idempotencyKey: string | null,
  opts: { now?: Date; relay?: "background" | "none" } = {},
): Promise<CreatedTask | null> {
  const now = opts.now ?? new Date();
  const { data: row, error } = await db.from("schedules").select("*").eq("id", id).maybeSingle();
  if (error) throw new Error(`schedule read failed: ${error.message}`);
  if (!row) return null;
  const task = await submitTask(
    db,
    {
      agent: row.agent_id,
      prompt: promptFor(row, now),
      ...(row.input && typeof row.input === "object" && !Array.isArray(row.input) ? { input: row.input as Record<string, Json> } : {}),
      mode: row.mode,
      require_approval: row.require_approval,
    },
    apiKeyId,
    idempotencyKey ?? `schedule:${id}:manual:${crypto.randomUUID()}`,
    { relay: opts.relay },
  );
  await db.from("schedules").update({ last_task_id: task.taskId, last_run_at: now.toISOString() }).eq("id", id);
  return task;
}

/** One due firing, as the dispatcher plans it (small: it is a step's output). */
export interface DueFiring {
  [key: string]: Json;
  schedule_id: string;
  expected_next: string;
  scheduled_for: string;
  next: string;
  skipped: number;
  skipped_from: string | null;
}

/** The firings due at `now`, one per due schedule. */
export async function dueFirings(db: AdminClient, now: Date, limit = 200): Promise<DueFiring[]> {
  const { data, error } = await db
    .from("schedules")
    .select("id,cron,timezone,next_run_at")
    .eq("enabled", true)
    .lte("next_run_at", now.toISOString())
    .order("next_run_at")
    .limit(limit);
  if (error) throw new Error(`due schedules read failed: ${error.message}`);
  const out: DueFiring[] = [];
  for (const s of data ?? []) {
    let plan;
    try {
      plan = planFiring(s.cron, s.timezone, new Date(s.next_run_at!), now);
    } catch (err) {
      console.error(`[schedules] schedule ${s.id} cannot be planned: ${(err as Error).message}`);
      continue;
    }
    if (!plan) continue;
    out.push({
      schedule_id: s.id,
      expected_next: s.next_run_at!,
      scheduled_for: plan.scheduledFor.toISOString(),
      next: plan.next.toISOString(),
      skipped: plan.skipped,
      skipped_from: plan.skippedFrom?.toISOString() ?? null,
    });
  }
  return out;
}

export interface FireResult {
  [key: string]: Json;
  outcome: "created" | "replayed" | "not_due";
  task_id: string | null;
  agent: string | null;
}

/** Fires one planned firing (fire_schedule decides; its start event is in the outbox). */
export async function fireSchedule(db: AdminClient, f: DueFiring): Promise<FireResult> {
  const { data: row, error: readErr } = await db.from("schedules").select("*").eq("id", f.schedule_id).maybeSingle();
  if (readErr) throw new Error(`schedule read failed: ${readErr.message}`);
  if (!row) return { outcome: "not_due", task_id: null, agent: null };
  const scheduledFor = new Date(f.scheduled_for);
  const prompt = promptFor(row, scheduledFor);
  const hash = requestHash({
    agent: row.agent_id,
    prompt,
    ...(row.input && typeof row.input === "object" && !Array.isArray(row.input) ? { input: row.input as Record<string, Json> } : {}),
    mode: row.mode,
    require_approval: row.require_approval,
  });
  const { data, error } = await db.rpc("fire_schedule", {
    p_schedule_id: f.schedule_id,
    p_expected_next: f.expected_next,
    p_scheduled_for: f.scheduled_for,
    p_next_run_at: f.next,
    p_skipped: f.skipped,
    p_skipped_from: f.skipped_from as string,
    p_prompt: prompt,
    p_request_hash: hash,
  });
  if (error) throw new Error(`fire_schedule failed: ${error.message}`);
  const r = (Array.isArray(data) ? data[0] : data) as { outcome: FireResult["outcome"]; task_id: string | null; agent_id: string | null } | undefined;
  if (!r) throw new Error("fire_schedule returned no row");
  if (r.outcome === "created") void kickOutboxRelay(); // the sweeper sends it otherwise
  if (r.outcome === "created" && f.skipped > 0) {
    console.warn(`[schedules] schedule ${f.schedule_id}: ran the firing of ${f.scheduled_for} once and skipped ${f.skipped} missed since ${f.skipped_from}`);
  }
  return { outcome: r.outcome, task_id: r.task_id, agent: r.agent_id };
}
