// The console's Failed page: what it shows (dead letters, breakers, the night's count) and what its forms do — replay
// (optionally with an edited prompt or another agent), discard with a note, and replay a selection. Every mutation
// starts with guardMutation (session, same origin, CSRF) and goes through the same lib/dead-letters.ts functions as the
// API, so a replay from the console respects budgets, concurrency and approvals exactly like a new task.
import { z } from "zod";
import type { AdminClient } from "@/lib/db/admin";
import { DeadLetterId, discardDeadLetter, replayDeadLetter } from "@/lib/dead-letters";
import { ApiError } from "@/lib/http/errors";
import { IdempotencyKey } from "@/lib/tasks/schema";
import { CONSOLE_ACTOR, guardMutation, type Refusal, type RequestContext } from "./operations";

export type FailedFormResult = { ok: true; message: string; taskIds: string[] } | Refusal;

const ReplayForm = z.object({
  dead_letter_id: DeadLetterId,
  prompt: z.string().trim().max(100_000).optional(),
  agent: z.string().regex(/^[a-z][a-z0-9_-]{1,39}$/).optional(),
  idempotency_key: IdempotencyKey,
});

const field = (form: FormData, name: string) => {
  const v = form.get(name);
  return typeof v === "string" && v.trim() !== "" ? v : undefined;
};

function refusal(e: unknown): Refusal {
  if (e instanceof ApiError) return { ok: false, code: e.code, error: e.message };
  throw e;
}

export async function replayFromConsole(ctx: RequestContext, db: AdminClient): Promise<FailedFormResult> {
  const guard = guardMutation(ctx);
  if (!guard.ok) return guard;
  const parsed = ReplayForm.safeParse({
    dead_letter_id: field(ctx.form, "dead_letter_id"),
    prompt: field(ctx.form, "prompt"),
    agent: field(ctx.form, "agent"),
    idempotency_key: field(ctx.form, "idempotency_key"),
  });
  if (!parsed.success) return { ok: false, code: "invalid", error: `Invalid form: ${parsed.error.issues[0]?.path.join(".")}: ${parsed.error.issues[0]?.message}` };
  const f = parsed.data;
  try {
    const r = await replayDeadLetter(db, f.dead_letter_id, { prompt: f.prompt, agent: f.agent }, { apiKeyId: null, idempotencyKey: f.idempotency_key, actor: CONSOLE_ACTOR });
    return { ok: true, message: r.pipeline ? `Replayed the pipeline from its ${r.pipeline.stage} stage` : "Replayed", taskIds: r.taskId ? [r.taskId] : [] };
  } catch (e) {
    return refusal(e);
  }
}

export async function discardFromConsole(ctx: RequestContext, db: AdminClient): Promise<FailedFormResult> {
  const guard = guardMutation(ctx);
  if (!guard.ok) return guard;
  const id = field(ctx.form, "dead_letter_id");
  if (!id || !DeadLetterId.safeParse(id).success) return { ok: false, code: "invalid", error: "Unknown dead letter." };
  const note = field(ctx.form, "note")?.slice(0, 2000) ?? null;
  try {
    await discardDeadLetter(db, id, note, CONSOLE_ACTOR);
    return { ok: true, message: "Discarded", taskIds: [] };
  } catch (e) {
    return refusal(e);
  }
}

/** Replays every selected entry; an entry replayed or discarded meanwhile is skipped, not an error. */
export async function replaySelectedFromConsole(ctx: RequestContext, db: AdminClient): Promise<FailedFormResult> {
  const guard = guardMutation(ctx);
  if (!guard.ok) return guard;
  const ids = ctx.form.getAll("ids").filter((v): v is string => typeof v === "string" && DeadLetterId.safeParse(v).success).slice(0, 200);
  const key = field(ctx.form, "idempotency_key");
  if (ids.length === 0) return { ok: false, code: "invalid", error: "Select at least one entry to replay." };
  if (!key || !IdempotencyKey.safeParse(key).success) return { ok: false, code: "invalid", error: "The form is stale. Reload the page." };
  const taskIds: string[] = [];
  let replayedCount = 0;
  let skipped = 0;
  for (const id of ids) {
    try {
      // One key per entry: submitting the same selection twice replays each entry once.
      const r = await replayDeadLetter(db, id, {}, { apiKeyId: null, idempotencyKey: `${key}:${id}`.slice(0, 255), actor: CONSOLE_ACTOR });
      replayedCount++;
      if (r.taskId) taskIds.push(r.taskId);
    } catch (e) {
      if (e instanceof ApiError && e.status === 409) skipped++;
      else return refusal(e);
    }
  }
  return { ok: true, message: `Replayed ${replayedCount}${skipped ? `, skipped ${skipped} already handled` : ""}`, taskIds };
}

/** New dead letters since `since` (the morning summary's window). */
export async function countDeadLettersSince(db: AdminClient, since: string): Promise<number> {
  const { count, error } = await db.from("dead_letters").select("id", { count: "exact", head: true }).gte("created_at", since);
  if (error) throw new Error(`dead letter count failed: ${error.message}`);
  return count ?? 0;
}

/** Pipelines built from cached research since `since` (the morning summary's window). */
export async function countDegradedSince(db: AdminClient, since: string): Promise<number> {
  const { count, error } = await db.from("pipelines").select("id", { count: "exact", head: true }).not("degraded", "is", null).gte("updated_at", since);
  if (error) throw new Error(`degraded pipeline count failed: ${error.message}`);
  return count ?? 0;
}
