// Hard per-agent daily budgets. Every invariant lives in a Postgres function (supabase/migrations/*_budgets.sql);
// this module only names the calls, types their answers, and computes the worst case a call may cost.
//
// The protocol around one model call, inside the call's durable step:
//   1. amount = worstCaseMicros(model, { inputTokens: <counted, or estimateInputTokensUpperBound(params)>, maxTokens })
//   2. reserveBudget(...)  — refused: wait until `nextWindowAt` (unless `neverFits`: the call exceeds the whole cap)
//   3. call the model      — it throws: releaseBudget(...), rethrow
//   4. settleBudget(...) with costMicros(model, usage) — the last thing the step does
// reserve/settle/release are idempotent on (task, step), so a retried step pays once.
import type { AdminClient } from "@/lib/db/admin";
import type { Database } from "@/lib/db/database.types";
import { BATCH_DISCOUNT, priceFor } from "@/lib/llm/prices";

type Fns = Database["public"]["Functions"];
export type ReservationStatus = Database["public"]["Enums"]["budget_reservation_status"];
export type AgentDaySpend = Fns["spend_by_agent_day"]["Returns"][number];
export type TaskSpend = Fns["spend_by_task"]["Returns"][number];
export type ModelSpend = Fns["spend_by_model"]["Returns"][number];

/** An error raised by a budget function. `code` is the SQLSTATE: NSB01 unknown agent, NSB02 unknown task or task of
 * another agent, NSB04 settle without a reservation, 22023 invalid argument; anything else is infrastructure. */
export class BudgetError extends Error {
  readonly code: string | undefined;
  constructor(op: string, error: { message: string; code?: string }) {
    super(`${op} failed: ${error.message}`);
    this.name = "BudgetError";
    this.code = error.code;
  }
}

/** A clock value for the database: the app passes its own clock (tests inject one); omitted → the database's now(). */
export type Instant = Date | string;
const iso = (t: Instant | undefined) => (t === undefined ? undefined : typeof t === "string" ? t : t.toISOString());

export interface Reservation {
  /** True when the step holds a reservation (a new one, or the one an earlier attempt of this step made). */
  ok: boolean;
  reservationId: string | null;
  /** `reserved`, or `settled` when an earlier attempt of this step already settled (its money is spent: calling
   * the model again would be unreserved spend — use a new step key for a genuinely new call). Null when refused. */
  status: ReservationStatus | null;
  reservedMicros: number;
  /** Cap − committed in the window after this call, never below 0. */
  remainingMicros: number;
  capMicros: number;
  /** The agent's local calendar day (YYYY-MM-DD) the reservation belongs to. */
  windowStart: string;
  /** The next local midnight of the agent, as an absolute ISO time: when a refused call may try again. */
  nextWindowAt: string;
  /** Refused and larger than the whole daily cap: waiting for the next window will not help. */
  neverFits: boolean;
  /** Why it was refused: `in_flight` — settled spend + this call fits the cap, reservations of calls in flight are
   * in the way (they settle within seconds, usually far below their worst case): wait for a settle or release;
   * `settled` — settled spend alone leaves no room: wait for the next window (or a raised cap). Null when granted. */
  refusal: "in_flight" | "settled" | null;
  /** The window's settled spend (estimates included) and its reservations in flight, after this call. */
  settledMicros: number;
  inFlightMicros: number;
}

export async function reserveBudget(
  db: AdminClient,
  args: { agentId: string; taskId: string; stepId: string; model: string; amountMicros: number; now?: Instant },
): Promise<Reservation> {
  assertMicros("reserveBudget", args.amountMicros);
  const { data, error } = await db.rpc("reserve_budget", {
    p_agent_id: args.agentId,
    p_task_id: args.taskId,
    p_step_id: args.stepId,
    p_model: args.model,
    p_amount_micros: args.amountMicros,
    p_now: iso(args.now),
  });
  if (error) throw new BudgetError("reserve_budget", error);
  const row = one("reserve_budget", data);
  return {
    ok: row.ok,
    reservationId: row.reservation_id ?? null,
    status: row.status ?? null,
    reservedMicros: row.reserved_micros,
    remainingMicros: row.remaining_micros,
    capMicros: row.cap_micros,
    windowStart: row.window_start,
    nextWindowAt: new Date(row.next_window_at).toISOString(),
    neverFits: !row.ok && args.amountMicros > row.cap_micros,
    refusal: row.ok ? null : row.refusal === "in_flight" ? "in_flight" : "settled",
    settledMicros: Number(row.settled_micros ?? 0),
    inFlightMicros: Number(row.in_flight_micros ?? 0),
  };
}

export interface Usage {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens?: number | null;
  cache_read_input_tokens?: number | null;
}

export interface Settlement {
  /** True when this call settled the step; false when it had been settled before (nothing changed). */
  settled: boolean;
  reservationId: string;
  reservedMicros: number;
  /** The actual cost on record (the first settlement's, on a repeat). */
  actualMicros: number;
  remainingMicros: number;
  windowStart: string;
  /** The agent has tasks waiting for money (waiting_budget): wake them, this settlement may have freed some. */
  waiters: boolean;
}

/** Records the real cost of the step's call: the window gets back reserved − actual, tasks.cost_micros grows once. */
export async function settleBudget(
  db: AdminClient,
  args: { taskId: string; stepId: string; actualMicros: number; usage?: Usage; now?: Instant },
): Promise<Settlement> {
  assertMicros("settleBudget", args.actualMicros);
  const u = args.usage;
  const { data, error } = await db.rpc("settle_budget", {
    p_task_id: args.taskId,
    p_step_id: args.stepId,
    p_actual_micros: args.actualMicros,
    p_input_tokens: u?.input_tokens ?? 0,
    p_output_tokens: u?.output_tokens ?? 0,
    p_cache_creation_input_tokens: u?.cache_creation_input_tokens ?? 0,
    p_cache_read_input_tokens: u?.cache_read_input_tokens ?? 0,
    p_now: iso(args.now),
  });
  if (error) throw new BudgetError("settle_budget", error);
  const row = one("settle_budget", data);
  return {
    settled: row.settled,
    reservationId: row.reservation_id,
    reservedMicros: row.reserved_micros,
    actualMicros: row.actual_micros,
    remainingMicros: row.remaining_micros,
    windowStart: row.window_start,
    waiters: row.waiters === true,
  };
}

export interface WriteOff {
  /** Open reservations of the turn charged as estimates now. */
  writtenOff: number;
  estimatedMicros: number;
  /** The reservation key the retry must use (this turn's earlier keys are spent). */
  nextKey: string;
}

/**
 * Charges every open reservation of a turn whose answer was lost (the process died with the call in flight, the
 * connection broke after the request was sent, or the 200 could not be read) as an ESTIMATE — the provider most
 * likely billed it: the counted input plus the expected output (expected_output_tokens, the limiter's estimate: the
 * agent's mean on the model, else the model's, else ¼ of max_tokens), never below the input cost, within the
 * reservation. Marked `estimated` in the ledger, counted by the cap, shown apart in the task's cost and
 * GET /api/spend. Returns the key the retry reserves under.
 */
export async function writeOffLostCalls(
  db: AdminClient,
  args: { taskId: string; turnId: string; model: string; inputTokens: number; maxTokens: number; now?: Instant; batch?: boolean },
): Promise<WriteOff> {
  // A batch call is billed at the batch discount: its estimate is priced the same way.
  const f = args.batch ? BATCH_DISCOUNT : 1;
  const base = priceFor(args.model);
  const p = { input: base.input * f, output: base.output * f };
  const { data, error } = await db.rpc("write_off_lost_calls", {
    p_task_id: args.taskId,
    p_turn_id: args.turnId,
    p_input_tokens: args.inputTokens,
    p_input_micros: Math.ceil((args.inputTokens * p.input) / 1_000_000),
    p_output_micros_per_mtok: Math.ceil(p.output),
    p_max_tokens: args.maxTokens,
    p_now: iso(args.now),
  });
  if (error) throw new BudgetError("write_off_lost_calls", error);
  const row = one("write_off_lost_calls", data);
  return { writtenOff: row.written_off, estimatedMicros: Number(row.estimated_micros), nextKey: row.next_key };
}

/** Gives a failed call's whole reservation back. True when released now; false when there was nothing to release
 * (released before, never reserved, or settled — spent money stays spent). */
export async function releaseBudget(
  db: AdminClient,
  args: { taskId: string; stepId: string; now?: Instant },
): Promise<boolean> {
  const { data, error } = await db.rpc("release_budget", {
    p_task_id: args.taskId,
    p_step_id: args.stepId,
    p_now: iso(args.now),
  });
  if (error) throw new BudgetError("release_budget", error);
  return data === true;
}

/** Releases every reservation of the task still open (a run that failed for good between reserve and settle);
 * settled spend stays. Returns how many were released. Idempotent. */
export async function releaseOpenReservations(db: AdminClient, taskId: string, now?: Instant): Promise<number> {
  const { data, error } = await db.rpc("release_task_budget", { p_task_id: taskId, p_now: iso(now) });
  if (error) throw new BudgetError("release_task_budget", error);
  return data ?? 0;
}

/** Records the "budget exhausted" notification for the agent's window; true only the first time that day. */
export async function noteBudgetExhausted(
  db: AdminClient,
  args: {
    agentId: string;
    taskId: string | null;
    windowStart: string;
    nextWindowAt?: Instant;
    payload?: Record<string, unknown>;
    now?: Instant;
  },
): Promise<boolean> {
  const { data, error } = await db.rpc("note_budget_exhausted", {
    p_agent_id: args.agentId,
    p_task_id: args.taskId as string, // the function takes null (a notice not tied to a task)
    p_window: args.windowStart,
    p_next_window_at: iso(args.nextWindowAt),
    p_payload: (args.payload ?? undefined) as never,
    p_now: iso(args.now),
  });
  if (error) throw new BudgetError("note_budget_exhausted", error);
  return data === true;
}

/** Spend per agent per local day (newest first); every filter optional. `committed_micros` includes calls in flight. */
export async function spendByAgentDay(
  db: AdminClient,
  filter: { agentId?: string; from?: string; to?: string } = {},
): Promise<AgentDaySpend[]> {
  const { data, error } = await db.rpc("spend_by_agent_day", {
    p_agent_id: filter.agentId,
    p_from: filter.from,
    p_to: filter.to,
  });
  if (error) throw new BudgetError("spend_by_agent_day", error);
  return data ?? [];
}

/** Records what a batch call's discount saved on its settled reservation; returns the task's total saving. */
export async function noteBatchSaving(db: AdminClient, args: { taskId: string; stepId: string; savingMicros: number }): Promise<number> {
  const { data, error } = await db.rpc("note_batch_saving", { p_task_id: args.taskId, p_step_id: args.stepId, p_saving_micros: Math.round(args.savingMicros) });
  if (error) throw new BudgetError("note_batch_saving", error);
  return Number(data);
}

/** Spend of one task; null when it has made no (live) reservation. */
export async function spendByTask(db: AdminClient, taskId: string): Promise<TaskSpend | null> {
  const { data, error } = await db.rpc("spend_by_task", { p_task_id: taskId });
  if (error) throw new BudgetError("spend_by_task", error);
  return data?.[0] ?? null;
}

/** Spend per model over a range of windows (inclusive dates), optionally for one agent or task; largest first. */
export async function spendByModel(
  db: AdminClient,
  filter: { from?: string; to?: string; agentId?: string; taskId?: string } = {},
): Promise<ModelSpend[]> {
  const { data, error } = await db.rpc("spend_by_model", {
    p_from: filter.from,
    p_to: filter.to,
    p_agent_id: filter.agentId,
    p_task_id: filter.taskId,
  });
  if (error) throw new BudgetError("spend_by_model", error);
  return data ?? [];
}

/**
 * The most one call can cost, in micro-dollars, rounded up: every input token at the dearest input rate of the
 * model (the 5-minute cache-write price is above the base input price, and a request with `cache_control` may write
 * all of its input to the cache), plus `maxTokens` at the output price (extended thinking counts inside max_tokens).
 * No batch discount: an upper bound must hold for either mode.
 *
 * Not covered, by nature: server-side tools (web search bills per use and adds the results as input tokens inside
 * the same call) — pass their fee bound as `extraMicros`; settle_budget charges anything beyond the reservation.
 * Prompt caching with the 1-hour TTL writes at 2× the input price, above the table's 5-minute cacheWrite: add it to
 * lib/llm/prices.ts before using that TTL.
 */
export function worstCaseMicros(
  model: string,
  call: { inputTokens: number; maxTokens: number; extraMicros?: number },
): number {
  if (!Number.isSafeInteger(call.inputTokens) || call.inputTokens < 0) throw new Error(`worstCaseMicros: bad inputTokens ${call.inputTokens}`);
  if (!Number.isSafeInteger(call.maxTokens) || call.maxTokens < 0) throw new Error(`worstCaseMicros: bad maxTokens ${call.maxTokens}`);
  const p = priceFor(model);
  const inputRate = Math.max(p.input, p.cacheWrite, p.cacheRead);
  // micro-dollars per MTok × tokens: below 2^53 for any real request (1M tokens × $75/MTok = 7.5e13), so exact.
  const raw = call.inputTokens * inputRate + call.maxTokens * p.output;
  return Math.ceil(raw / 1_000_000) + Math.ceil(call.extraMicros ?? 0);
}

/** The request parts that make up a call's input (a MessageCreateParams or MessageCountTokensParams fits). */
export interface InputParams {
  system?: unknown;
  messages: readonly unknown[];
  tools?: readonly unknown[] | null;
  tool_choice?: unknown;
}

/** Tokens counted for each image block. Claude downsizes images to ≤ ~1.15 megapixels (≈ 1,600 tokens by the
 * documented width × height / 750); four times that leaves room for models that keep more resolution. */
export const IMAGE_TOKENS_BOUND = 6_400;
/** The system prompt Anthropic adds when tools are offered (documented at 313–346 tokens for current models). */
export const TOOL_USE_OVERHEAD_TOKENS = 1_000;
const BASE_OVERHEAD_TOKENS = 64;
const utf8 = new TextEncoder();

/**
 * An upper bound on a request's input tokens without a token-counting call — the fallback when count_tokens is
 * unavailable. Prefer a counted figure: this one is deliberately loose.
 *
 * The bound: one token per UTF-8 byte of the request serialized as JSON. Claude's tokenizer is a byte-level BPE, in
 * which every token covers at least one byte of text, so the byte count bounds the tokens of *any* text — English,
 * CJK, emoji, base64, minified code — and the JSON keys, quotes and escapes stand in for the role and block
 * markers the model sees. A characters/N heuristic is tighter (English runs ~4 characters per token) but is no
 * bound: Chinese or Japanese text is ≥ 1 token per character, and a random ID or base64 blob is ~1 token per 2–3
 * characters, which beats chars/2 and chars/3 — and the research agent feeds scraped pages of exactly that kind
 * into its context. The price of the safe choice is over-reserving English input about 4×, which only matters near
 * the end of a day's budget (the refund comes back at settle).
 *
 * Images count IMAGE_TOKENS_BOUND each instead of their base64 bytes; tool definitions add
 * TOOL_USE_OVERHEAD_TOKENS. A PDF document (base64 or URL) has no cheap bound — its pages become text plus images —
 * so this throws for one; count its tokens instead.
 */
export function estimateInputTokensUpperBound(params: InputParams): number {
  let images = 0;
  const replacer = (_key: string, value: unknown): unknown => {
    if (value && typeof value === "object" && !Array.isArray(value)) {
      const block = value as { type?: unknown; source?: { type?: unknown } };
      if (block.type === "image") {
        images += 1;
        return { type: "image" };
      }
      if (block.type === "document" && block.source && block.source.type !== "text" && block.source.type !== "content") {
        throw new Error(
          "estimateInputTokensUpperBound: a PDF document has no cheap token bound; count the request's tokens instead",
        );
      }
    }
    return value;
  };
  const json = JSON.stringify(
    { system: params.system ?? null, messages: params.messages, tools: params.tools ?? null, tool_choice: params.tool_choice ?? null },
    replacer,
  );
  const hasTools = Array.isArray(params.tools) && params.tools.length > 0;
  return (
    utf8.encode(json).length +
    images * IMAGE_TOKENS_BOUND +
    (hasTools ? TOOL_USE_OVERHEAD_TOKENS : 0) +
    BASE_OVERHEAD_TOKENS
  );
}

function assertMicros(op: string, n: number) {
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${op}: micro-dollars must be a non-negative integer, got ${n}`);
}

function one<T>(op: string, rows: T[] | null): T {
  const row = rows?.[0];
  if (!row) throw new BudgetError(op, { message: "no row returned" });
  return row;
}
