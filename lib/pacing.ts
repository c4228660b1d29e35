// Token-weighted pacing under Claude's per-model rate limits (requests, input tokens and output tokens per minute).
// The buckets live in Postgres (supabase/migrations/*_pacing.sql), so every instance of the app takes from the same
// ones; this module names the calls and reads the `anthropic-ratelimit-*` headers that calibrate them.
//
// Around one direct model call (batch calls are paced by the Batches API's own limits, not these):
//   1. takeRateLimit(...)  — one request, the counted input tokens and the call's EXPECTED output
//                            (admissionOutputTokens: the API counts output as it is produced, not at max_tokens;
//                            max_tokens until the agent's own answers calibrate it);
//                            not admitted: the task waits (durably) until `waitUntil`, then tries again
//   2. call the model      — a 429 anyway: noteRateLimited(...) with the bounded retry-after, then wait
//   3. settleRateLimit(...) with the real usage (what was taken minus what was used: unused tokens go back, tokens
//                            beyond the expectation are charged) and the answer's headers
// A call is in flight (rate_limit_in_flight) from its admission to its settlement, return or 429, under its ticket:
// the provider counts output only when it is produced, so its remaining figure is compared with ours less the output
// of the calls in flight.
import type { AdminClient } from "@/lib/db/admin";

/** The longest a 429's retry-after is obeyed in one wait: a provider asking for an hour is asked again sooner, and
 * the task says meanwhile that it is rate limited (it never sits silently in `running`). */
export const MAX_RETRY_AFTER_SECONDS = 300;
/** How many 429s in a row one turn accepts before it fails (each waited for, bounded). */
export const MAX_RATE_LIMITED_ATTEMPTS = 8;

export class PacingError extends Error {
  constructor(op: string, error: { message: string }) {
    super(`${op} failed: ${error.message}`);
    this.name = "PacingError";
  }
}

export interface Admission {
  ok: boolean;
  /** When to try again (ISO), when not admitted. */
  waitUntil: string | null;
  /** The limit that binds: requests | input_tokens | output_tokens | retry_after. */
  dimension: string | null;
  /** What was taken (clamped to a minute's limit for a call larger than that): give back the unused part after. */
  inputTaken: number;
  outputTaken: number;
}

export async function takeRateLimit(
  db: AdminClient,
  args: { model: string; ticket: string; priority: number; inputTokens: number; outputTokens: number; taskId?: string; now?: Date },
): Promise<Admission> {
  const { data, error } = await db.rpc("take_rate_limit", {
    p_model: args.model,
    p_ticket: args.ticket,
    p_priority: args.priority,
    p_input_tokens: args.inputTokens,
    p_output_tokens: args.outputTokens,
    p_task_id: args.taskId,
    p_now: args.now?.toISOString(),
  });
  if (error) throw new PacingError("take_rate_limit", error);
  const row = data?.[0];
  if (!row) throw new PacingError("take_rate_limit", { message: "no row returned" });
  return {
    ok: row.ok,
    waitUntil: row.wait_until ? new Date(row.wait_until).toISOString() : null,
    dimension: row.dimension ?? null,
    inputTaken: row.input_taken,
    outputTaken: row.output_taken,
  };
}

/** The output a call of this agent and model is expected to produce: the mean of the agent's last 50 real calls of
 * the model (of every agent's when the agent is new to it; a quarter of maxTokens without any history), within
 * [1, maxTokens]. Admission takes this, the answer corrects it. */
export async function expectedOutputTokens(db: AdminClient, args: { agentId: string; model: string; maxTokens: number }): Promise<number> {
  const { data, error } = await db.rpc("expected_output_tokens", { p_agent_id: args.agentId, p_model: args.model, p_max_tokens: args.maxTokens });
  if (error) throw new PacingError("expected_output_tokens", error);
  const n = Number(data);
  return Number.isFinite(n) && n > 0 ? n : args.maxTokens;
}

/** What admission takes from the output bucket for a call (admission_output_tokens): the agent's own mean on the model
 * once at least 3 of its real answers calibrate it, else maxTokens — every agent's mean or a quarter of maxTokens
 * (expectedOutputTokens, the lost-call estimate) let a night's first seconds overdraw the provider's output bucket.
 * The settlement gives back what the answer did not use. */
export async function admissionOutputTokens(db: AdminClient, args: { agentId: string; model: string; maxTokens: number }): Promise<number> {
  const { data, error } = await db.rpc("admission_output_tokens", { p_agent_id: args.agentId, p_model: args.model, p_max_tokens: args.maxTokens });
  if (error) throw new PacingError("admission_output_tokens", error);
  const n = Number(data);
  return Number.isFinite(n) && n > 0 ? n : args.maxTokens;
}

/** The rate-limit figures of an answer's `anthropic-ratelimit-*` headers (null where absent). */
export interface RateLimitHeaders {
  requestsLimit: number | null;
  requestsRemaining: number | null;
  inputLimit: number | null;
  inputRemaining: number | null;
  outputLimit: number | null;
  outputRemaining: number | null;
  /** retry-after in seconds (429s), unbounded as sent. */
  retryAfterSeconds: number | null;
}

export function readRateLimitHeaders(headers: Headers | undefined | null): RateLimitHeaders {
  const int = (name: string) => {
    const raw = headers?.get(name);
    if (raw === null || raw === undefined || raw === "") return null;
    const n = Number(raw);
    return Number.isFinite(n) && n >= 0 ? Math.floor(n) : null;
  };
  let retryAfterSeconds: number | null = null;
  const ra = headers?.get("retry-after");
  if (ra) {
    const n = Number(ra);
    if (Number.isFinite(n)) retryAfterSeconds = Math.max(0, n);
    else if (!Number.isNaN(Date.parse(ra))) retryAfterSeconds = Math.max(0, (Date.parse(ra) - Date.now()) / 1000);
  }
  return {
    requestsLimit: int("anthropic-ratelimit-requests-limit"),
    requestsRemaining: int("anthropic-ratelimit-requests-remaining"),
    inputLimit: int("anthropic-ratelimit-input-tokens-limit"),
    inputRemaining: int("anthropic-ratelimit-input-tokens-remaining"),
    outputLimit: int("anthropic-ratelimit-output-tokens-limit"),
    outputRemaining: int("anthropic-ratelimit-output-tokens-remaining"),
    retryAfterSeconds,
  };
}

/** After an answer: correct the buckets by what was taken minus what the call used (positive: given back; negative:
 * charged) and calibrate from its headers. */
export async function settleRateLimit(
  db: AdminClient,
  args: {
    model: string;
    /** The admitted call's ticket (takeRateLimit's): it is no longer in flight. */
    ticket: string;
    refundInput: number;
    refundOutput: number;
    headers: RateLimitHeaders;
    now?: Date;
    /** When the answer (and its headers) was read: the provider's remaining figures are as of then, and are brought
     * forward to `now` at the limits' rates before they cap our buckets (capping by a stale figure loses the refill). */
    observedAt?: Date;
  },
): Promise<void> {
  const h = args.headers;
  const { error } = await db.rpc("settle_rate_limit", {
    p_model: args.model,
    p_refund_input: Math.trunc(args.refundInput),
    p_refund_output: Math.trunc(args.refundOutput),
    p_requests_limit: h.requestsLimit ?? undefined,
    p_requests_remaining: h.requestsRemaining ?? undefined,
    p_input_limit: h.inputLimit ?? undefined,
    p_input_remaining: h.inputRemaining ?? undefined,
    p_output_limit: h.outputLimit ?? undefined,
    p_output_remaining: h.outputRemaining ?? undefined,
    p_now: args.now?.toISOString(),
    p_observed_at: args.observedAt?.toISOString(),
    p_ticket: args.ticket,
  });
  if (error) throw new PacingError("settle_rate_limit", error);
}

/** Gives an admitted call's tokens back whole (it was not sent). */
export async function returnRateLimit(db: AdminClient, args: { model: string; ticket: string; input: number; output: number; now?: Date }): Promise<void> {
  const { error } = await db.rpc("return_rate_limit", {
    p_model: args.model,
    p_input: args.input,
    p_output: args.output,
    p_now: args.now?.toISOString(),
    p_ticket: args.ticket,
  });
  if (error) throw new PacingError("return_rate_limit", error);
}

/** A 429 came back: block the model until the bounded retry-after, correct the buckets from the headers, and mark
 * the task waiting_rate_limit. Returns when to try again (ISO). */
export async function noteRateLimited(
  db: AdminClient,
  args: { model: string; ticket: string; headers: RateLimitHeaders; taskId?: string; now?: Date },
): Promise<{ retryAt: string; retryAfterSeconds: number }> {
  const h = args.headers;
  const retryAfterSeconds = boundedRetryAfter(h.retryAfterSeconds);
  const { data, error } = await db.rpc("note_rate_limited", {
    p_model: args.model,
    p_retry_after_seconds: retryAfterSeconds,
    p_task_id: args.taskId,
    p_requests_limit: h.requestsLimit ?? undefined,
    p_requests_remaining: h.requestsRemaining ?? undefined,
    p_input_limit: h.inputLimit ?? undefined,
    p_input_remaining: h.inputRemaining ?? undefined,
    p_output_limit: h.outputLimit ?? undefined,
    p_output_remaining: h.outputRemaining ?? undefined,
    p_now: args.now?.toISOString(),
    p_ticket: args.ticket,
  });
  if (error) throw new PacingError("note_rate_limited", error);
  return { retryAt: new Date(data as string).toISOString(), retryAfterSeconds };
}

/** retry-after as obeyed: at least 1 s, at most MAX_RETRY_AFTER_SECONDS (a missing header means 5 s). */
export function boundedRetryAfter(seconds: number | null): number {
  if (seconds === null || !Number.isFinite(seconds)) return 5;
  return Math.min(Math.max(seconds, 1), MAX_RETRY_AFTER_SECONDS);
}

/** Back to `running` when a rate-limited task's retry starts. */
export async function resumeRateLimitedTask(db: AdminClient, taskId: string): Promise<boolean> {
  const { data, error } = await db.rpc("resume_rate_limited_task", { p_task_id: taskId });
  if (error) throw new PacingError("resume_rate_limited_task", error);
  return data === true;
}
