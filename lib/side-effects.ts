// The side-effect ledger: every side-effecting tool call runs at most once per (task, tool call), however often its
// step is retried or duplicated. The decisions are made in Postgres (claim_side_effect, complete_side_effect,
// fail_side_effect in supabase/migrations/20261126090100_tools.sql); this module only composes them.
//
// The key is (task id, Claude's tool_use id). That id is stable across a retried tool step because the model turn
// that produced it is its own memoized step (`turn-N`): a retry replays the memoized assistant content, with the same
// tool_use ids, rather than asking the model again. Never key the ledger on anything a retry would recompute.
import { createHash } from "node:crypto";
import type { AdminClient } from "@/lib/db/admin";
import type { Json } from "@/lib/db/database.types";

export interface SideEffectCall {
  taskId: string;
  toolUseId: string;
  tool: string;
  /** The validated request; its canonical SHA-256 guards against the same tool_use id carrying another request. */
  request: unknown;
  /** A small record of the request for the ledger's audit column (default: none). */
  record?: Json;
  /** How long the claim stays exclusive; must exceed the longest the effect can take. */
  leaseSeconds?: number;
  /** The clock the lease is measured against (tests); default: the database's now(). */
  now?: Date;
}

export interface RunOnceContext {
  /** The idempotency key to hand to the provider, so that a re-claimed call after a crash is deduplicated there. */
  idempotencyKey: string;
  /** 1 on the first claim, 2+ when a failed or expired claim is being retried. */
  attempt: number;
}

export interface RunOnceResult<T> {
  result: T;
  /** True when the effect had already run and this call returned the stored result without running it. */
  replayed: boolean;
}

/** Another run holds a live claim on this call: retry the step after `retryAfterMs`. */
export class SideEffectInProgressError extends Error {
  override readonly name = "SideEffectInProgressError";
  readonly retryable = true;
  constructor(
    readonly key: string,
    readonly retryAfterMs: number,
  ) {
    super(`side effect ${key} is being performed by another run; retry in ${Math.ceil(retryAfterMs / 1000)} s`);
  }
}

/** The same (task, tool_use id) was used for a different request: a bug or a non-deterministic replay. */
export class SideEffectConflictError extends Error {
  override readonly name = "SideEffectConflictError";
  readonly retryable = false;
  constructor(readonly key: string) {
    super(`side effect ${key} was already claimed for a different request`);
  }
}

export const DEFAULT_LEASE_SECONDS = 120;

/** The ledger key, also sent to providers as their idempotency key (Resend accepts up to 256 characters). */
export function sideEffectKey(taskId: string, toolUseId: string): string {
  return `nightshift/${taskId}/${toolUseId}`;
}

/**
 * Runs `fn` at most once for (taskId, toolUseId) and returns its result; a repeat returns the stored result.
 *
 * - `fn` resolves: the result is recorded and returned (it must be JSON; keep it small).
 * - `fn` throws: the claim is released and the error rethrown, so a retried step tries again. `fn` must therefore
 *   throw only when running it again is safe: it did not act, or the provider deduplicates by `idempotencyKey`.
 *   Outcomes that must not be retried (a provider's permanent refusal) should be returned as results instead.
 * - Another run holds a live claim: throws SideEffectInProgressError (retryable).
 * - The id was claimed for another request: throws SideEffectConflictError (not retryable).
 */
export async function runOnce<T extends Json>(
  db: AdminClient,
  call: SideEffectCall,
  fn: (ctx: RunOnceContext) => Promise<T>,
): Promise<RunOnceResult<T>> {
  const key = sideEffectKey(call.taskId, call.toolUseId);
  const { data, error } = await db.rpc("claim_side_effect", {
    p_task_id: call.taskId,
    p_tool_use_id: call.toolUseId,
    p_tool: call.tool,
    p_request_hash: requestHash(call.request),
    p_lease_seconds: call.leaseSeconds ?? DEFAULT_LEASE_SECONDS,
    p_request: call.record ?? null,
    ...(call.now ? { p_now: call.now.toISOString() } : {}),
  } as never);
  if (error) throw new Error(`claim_side_effect failed: ${error.message}`);
  const claim = (data as ClaimRow[] | null)?.[0];
  if (!claim) throw new Error("claim_side_effect returned no row");

  switch (claim.outcome) {
    case "completed":
      return { result: claim.result as T, replayed: true };
    case "in_progress": {
      const until = claim.lease_expires_at ? Date.parse(claim.lease_expires_at) : NaN;
      const from = call.now?.getTime() ?? Date.now();
      throw new SideEffectInProgressError(key, Number.isFinite(until) ? Math.max(1000, until - from) : 5000);
    }
    case "conflict":
      throw new SideEffectConflictError(key);
    case "claimed":
      break;
    default:
      throw new Error(`claim_side_effect: unexpected outcome ${String(claim.outcome)}`);
  }

  let result: T;
  try {
    result = await fn({ idempotencyKey: key, attempt: claim.attempts });
  } catch (err) {
    // Best effort: if the release itself fails, the lease expires and a later retry re-claims.
    await db
      .rpc("fail_side_effect", {
        p_task_id: call.taskId,
        p_tool_use_id: call.toolUseId,
        p_claim_token: claim.claim_token!,
        p_error: err instanceof Error ? err.message : String(err),
      })
      .then(
        () => undefined,
        () => undefined,
      );
    throw err;
  }

  // The effect happened: recording it matters more than anything else here, so retry a failed write briefly
  // before giving up (after which the lease, then the provider's idempotency key, are the safety net).
  let lastError = "";
  for (let attempt = 0; attempt < 4; attempt++) {
    if (attempt > 0) await new Promise((r) => setTimeout(r, 100 * 2 ** attempt));
    const done = await db.rpc("complete_side_effect", {
      p_task_id: call.taskId,
      p_tool_use_id: call.toolUseId,
      p_result: result,
      ...(call.now ? { p_now: call.now.toISOString() } : {}),
    } as never);
    if (!done.error) {
      const row = (done.data as { outcome: string; result: Json }[] | null)?.[0];
      // A stale claimer finished first: everyone reports the first recorded result.
      if (row?.outcome === "already_completed") return { result: row.result as T, replayed: true };
      return { result, replayed: false };
    }
    lastError = done.error.message;
  }
  throw new Error(`complete_side_effect failed after the effect ran (${key}): ${lastError}`);
}

interface ClaimRow {
  outcome: "claimed" | "completed" | "in_progress" | "conflict";
  result: Json | null;
  claim_token: string | null;
  attempts: number;
  lease_expires_at: string | null;
}

/** SHA-256 of the request's canonical JSON (object keys sorted, so key order never changes the hash). */
export function requestHash(request: unknown): string {
  return createHash("sha256").update(canonicalJson(request)).digest("hex");
}

function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== "object") {
    const s = JSON.stringify(value);
    return s === undefined ? "null" : s;
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
}
