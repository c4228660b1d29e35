// The offline Claude API double: an HTTP server that speaks the parts of the Anthropic API Nightshift uses
// (Messages, streaming, token counting, Message Batches), so the real `@anthropic-ai/sdk` runs against it
// through `baseURL`. Answers are deterministic and plainly marked as offline; usage figures follow the real
// API's accounting, prompt caching included. Tests script per-scenario behaviour (tool calls, errors,
// latency, malformed tool input) in-process or over HTTP under `/_double/`.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { z } from "zod";
import { PromptCache, defaultMinCacheableTokens, type CacheUsage } from "./cache";
import {
  conversationFingerprint,
  findScenario,
  generate,
  newId,
  requestDigest,
  ScriptError,
  type Generated,
  type OutBlock,
} from "./model";
import { CONTEXT_WINDOW, validateRequest, type MessagesRequest } from "./request";
import { SCENARIO_HEADER, ScriptBook, scriptBodySchema, type Step } from "./script";
import { FaultBook, faultsBodySchema, type FaultAction, type FaultSpec } from "./faults";
import { countInputTokens, promptBlocks } from "./tokens";
import { BatchStore } from "./batch-store";
import { RateLimiter, rateLimitConfigSchema, type RateLimitConfig } from "./rate-limits";

export { scenarioMarker, type Step } from "./script";
export { OFFLINE_PREFIX } from "./model";

export interface ClaudeDoubleOptions {
  /** Port to listen on; a free one when omitted. */
  port?: number;
  /** Interface to bind; loopback by default. */
  host?: string;
  /** One line per API request. */
  log?: (line: string) => void;
  /** Where batches are kept across restarts (`npm run dev` passes its data directory); in memory when unset. */
  dataDir?: string;
  /** How long a batch stays `in_progress` on the double's clock (default 1000 ms). */
  batchDelayMs?: number;
  /** Base clock (ms since epoch); `clock.advance()` adds to it. Default `Date.now`. */
  now?: () => number;
  /** Override the per-model minimum cacheable prompt length (tokens). */
  minCacheableTokens?: number | ((model: string) => number);
  /** Keep at most this many call records (oldest dropped first). Default 20,000. */
  maxCallLog?: number;
  /** Keep the request body on only this many most recent call records. Default 1,000. */
  maxCallBodies?: number;
  /** Per-model rate limits enforced like the real API (local/claude/rate-limits.ts); none by default. */
  rateLimits?: RateLimitConfig;
}

export interface Usage {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens: number;
  cache_read_input_tokens: number;
  cache_creation: CacheUsage["cache_creation"];
  server_tool_use: null;
  service_tier: "standard" | "batch";
  inference_geo: null;
  output_tokens_details: null;
  speed: null;
}

export interface Message {
  id: string;
  type: "message";
  role: "assistant";
  model: string;
  content: OutBlock[];
  stop_reason: Generated["stop_reason"];
  stop_sequence: string | null;
  stop_details: null;
  container: null;
  diagnostics: null;
  usage: Usage;
}

export type CallKind = "messages" | "count_tokens" | "batch_request" | "batches" | "other";

/** One API request as the double saw it. */
export interface CallRecord {
  seq: number;
  /** ISO time on the double's clock. */
  at: string;
  method: string;
  path: string;
  kind: CallKind;
  scenario: string | null;
  model: string | null;
  stream: boolean;
  /** Messages in the request (null when the body was not a Messages request). */
  message_count: number | null;
  /** Index of the model turn being asked for: the number of assistant messages already in the request. */
  turn: number | null;
  /** Stable hash of model + system + tools + messages: retries of the same turn share it. */
  fingerprint: string | null;
  status: number;
  request_id: string;
  /** What answered: default | text | tool_use | malformed_tool_input | error | invalid | script_error | ok; a batch
   * request canceled before it finished: canceled (its usage cleared: not billed). */
  outcome: string;
  error_type: string | null;
  stop_reason: string | null;
  usage: Usage | null;
  batch_id: string | null;
  custom_id: string | null;
  /** The request body as sent (kept for the most recent `maxCallBodies` calls). */
  body?: unknown;
}

export type CallFilter =
  | Partial<Pick<CallRecord, "scenario" | "kind" | "path" | "status" | "model" | "batch_id">>
  | ((call: CallRecord) => boolean);

export interface ClaudeDouble {
  url: string;
  port: number;
  stop(): Promise<void>;
  /** Queue steps for a scenario; returns how many requests the queue will now answer. */
  script(scenario: string, steps: Step[]): number;
  /** Steps still queued for a scenario. */
  pending(scenario: string): number;
  calls(filter?: CallFilter): CallRecord[];
  /** Forget a scenario's script, calls and cache entries; with no argument, all state. */
  reset(scenario?: string): void;
  clock: { now(): number; advance(ms: number): void };
  /** The rate limits in force (configure replaces them and refills every bucket). */
  rateLimits: RateLimiter;
  /** Outages over time (local/claude/faults.ts): add returns the fault's id. */
  faults: { add(spec: FaultSpec): number; list(): ReturnType<FaultBook["list"]>; clear(): void };
}

const ERROR_TYPES: Record<number, string> = {
  400: "invalid_request_error",
  401: "authentication_error",
  402: "billing_error",
  403: "permission_error",
  404: "not_found_error",
  408: "timeout_error",
  409: "conflict_error",
  413: "request_too_large",
  429: "rate_limit_error",
  500: "api_error",
  504: "timeout_error",
  529: "overloaded_error",
};
export function errorTypeFor(status: number): string {
  return ERROR_TYPES[status] ?? (status >= 500 ? "api_error" : "invalid_request_error");
}
const DEFAULT_ERROR_MESSAGES: Record<string, string> = {
  rate_limit_error: "This request would exceed your organization's rate limit (scripted by the offline double).",
  overloaded_error: "Overloaded",
  api_error: "Internal server error",
  invalid_request_error: "Invalid request (scripted by the offline double).",
};

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type = errorTypeFor(status),
  ) {
    super(message);
  }
}

const batchCreateSchema = z.strictObject({
  requests: z
    .array(
      z.strictObject({
        custom_id: z.string().regex(/^[a-zA-Z0-9_-]{1,64}$/, "custom_id must be 1-64 characters of [a-zA-Z0-9_-]"),
        params: z.record(z.string(), z.unknown()),
      }),
    )
    .min(1)
    .max(100_000),
});

type BatchResult =
  | { type: "succeeded"; message: Message }
  | { type: "errored"; error: { type: "error"; error: { type: string; message: string }; request_id: string | null } }
  | { type: "canceled" }
  | { type: "expired" };

interface Batch {
  id: string;
  createdAt: number;
  endsAt: number;
  cancelAt: number | null;
  /** doneAt: when the request finished processing (double's clock); a cancel keeps the results of the requests done
   * by then (billed) and cancels the rest. seq: its call record, marked canceled (not billed) when it is. */
  items: Array<{ custom_id: string; result: BatchResult; doneAt?: number; seq?: number }>;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new HttpError(413, `Request exceeds the maximum allowed number of bytes (${limit}).`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

export async function startClaudeDouble(opts: ClaudeDoubleOptions = {}): Promise<ClaudeDouble> {
  const baseNow = opts.now ?? Date.now;
  let offset = 0;
  const clock = {
    now: () => baseNow() + offset,
    advance: (ms: number) => {
      offset += ms;
    },
  };
  const batchDelayMs = opts.batchDelayMs ?? 1_000;
  const minTokens =
    typeof opts.minCacheableTokens === "number"
      ? () => opts.minCacheableTokens as number
      : (opts.minCacheableTokens ?? defaultMinCacheableTokens);
  const cache = new PromptCache(clock.now, minTokens);
  const limiter = new RateLimiter(clock.now, opts.rateLimits);
  const scripts = new ScriptBook();
  const faults = new FaultBook(clock.now);
  const batchStore = new BatchStore<Batch>(opts.dataDir);
  const batches = batchStore.map;
  let log: CallRecord[] = [];
  let seq = 0;
  const maxLog = opts.maxCallLog ?? 20_000;
  const maxBodies = opts.maxCallBodies ?? 1_000;

  function record(partial: Partial<CallRecord> & Pick<CallRecord, "method" | "path" | "kind" | "status" | "request_id">): CallRecord {
    const rec: CallRecord = {
      seq: ++seq,
      at: new Date(clock.now()).toISOString(),
      scenario: null,
      model: null,
      stream: false,
      message_count: null,
      turn: null,
      fingerprint: null,
      outcome: "ok",
      error_type: null,
      stop_reason: null,
      usage: null,
      batch_id: null,
      custom_id: null,
      ...partial,
    };
    log.push(rec);
    if (log.length > maxLog) log = log.slice(log.length - maxLog);
    // Request bodies can be large: keep them only for the most recent calls.
    const stale = log[log.length - 1 - maxBodies];
    if (stale) delete stale.body;
    opts.log?.(
      `[claude-double] ${rec.method} ${rec.path} ${rec.status} ${rec.outcome}` +
        (rec.scenario ? ` scenario=${rec.scenario}` : "") +
        (rec.turn !== null ? ` turn=${rec.turn}` : "") +
        (rec.custom_id ? ` custom_id=${rec.custom_id}` : ""),
    );
    return rec;
  }

  function requestFacts(req: MessagesRequest) {
    return {
      model: req.model,
      message_count: req.messages.length,
      turn: req.messages.filter((m) => m.role === "assistant").length,
      fingerprint: conversationFingerprint(req),
    };
  }

  type Outcome =
    | { kind: "message"; message: Message; outcome: string; latencyMs?: number }
    | { kind: "error"; status: number; type: string; message: string; headers: Record<string, string>; outcome: string };

  /**
   * Runs one model request (validated) through the script and the model. Shared by /v1/messages and by
   * every request inside a batch.
   */
  async function runModel(req: MessagesRequest, scenario: string | null, tier: Usage["service_tier"], honourLatency: boolean): Promise<Outcome> {
    const step = scripts.take(scenario);
    if (step?.latency_ms && honourLatency) await sleep(step.latency_ms);
    if (step?.error) {
      const e = step.error;
      const type = e.type ?? errorTypeFor(e.status);
      const headers: Record<string, string> = {};
      if (e.retry_after_s !== undefined) headers["retry-after"] = String(e.retry_after_s);
      if (e.retry_after_ms !== undefined) headers["retry-after-ms"] = String(e.retry_after_ms);
      if (e.should_retry !== undefined) headers["x-should-retry"] = String(e.should_retry);
      return { kind: "error", status: e.status, type, message: e.message ?? DEFAULT_ERROR_MESSAGES[type] ?? "Error (scripted by the offline double).", headers, outcome: "error" };
    }
    let gen: Generated;
    try {
      gen = generate(req, step, requestDigest(req));
    } catch (err) {
      if (!(err instanceof ScriptError)) throw err;
      return {
        kind: "error",
        status: 400,
        type: "invalid_request_error",
        message: `[offline double] script error in scenario ${scenario}: ${err.message}`,
        headers: {},
        outcome: "script_error",
      };
    }
    const split = cache.apply(scenario ?? "", req.model, promptBlocks(req), true);
    const usage: Usage = {
      input_tokens: split.input_tokens,
      cache_creation_input_tokens: split.cache_creation_input_tokens,
      cache_read_input_tokens: split.cache_read_input_tokens,
      cache_creation: split.cache_creation,
      output_tokens: gen.output_tokens,
      server_tool_use: null,
      service_tier: tier,
      inference_geo: null,
      output_tokens_details: null,
      speed: null,
      ...(step?.usage ?? {}),
    };
    // As the API: an answer never has more output than max_tokens, whatever a script asked for.
    usage.output_tokens = Math.min(usage.output_tokens, req.max_tokens);
    const outcome = !step
      ? "default"
      : step.malformed_tool_input
        ? "malformed_tool_input"
        : step.tool_use
          ? "tool_use"
          : step.text !== undefined
            ? "text"
            : "default";
    if (step?.corrupt_answer) {
      // Test hook: a succeeded answer that is not a well-formed message (no usage).
      const { usage: _dropped, ...rest } = { id: newId("msg_01"), type: "message" as const, role: "assistant" as const, model: req.model, content: gen.content, stop_reason: gen.stop_reason, stop_sequence: gen.stop_sequence, usage };
      return { kind: "message", outcome, latencyMs: step.latency_ms, message: rest as never };
    }
    return {
      kind: "message",
      outcome,
      // Inside a batch, a scripted latency is how long the request takes to process after the batch is created.
      latencyMs: step?.latency_ms,
      message: {
        id: newId("msg_01"),
        type: "message",
        role: "assistant",
        model: req.model,
        content: gen.content,
        stop_reason: gen.stop_reason,
        stop_sequence: gen.stop_sequence,
        stop_details: null,
        container: null,
        diagnostics: null,
        usage,
      },
    };
  }

  /** Validation plus the context-window check the API makes before the model runs. */
  function validate(body: unknown, kind: "create" | "count_tokens", inBatch: boolean) {
    const v = validateRequest(body, kind, inBatch);
    if (!v.ok) return v;
    const total = countInputTokens(v.request);
    if (total > CONTEXT_WINDOW) {
      return { ok: false as const, status: 400, type: "invalid_request_error", message: `prompt is too long: ${total} tokens > ${CONTEXT_WINDOW} maximum` };
    }
    return v;
  }

  function batchView(b: Batch, origin: string) {
    const now = clock.now();
    const ended = now >= b.endsAt;
    const counts = { processing: 0, succeeded: 0, errored: 0, canceled: 0, expired: 0 };
    if (!ended) counts.processing = b.items.length;
    else for (const it of finalItems(b)) counts[it.result.type]++;
    return {
      id: b.id,
      type: "message_batch" as const,
      processing_status: ended ? "ended" : b.cancelAt !== null ? "canceling" : "in_progress",
      request_counts: counts,
      ended_at: ended ? new Date(b.endsAt).toISOString() : null,
      created_at: new Date(b.createdAt).toISOString(),
      expires_at: new Date(b.createdAt + 24 * 3_600_000).toISOString(),
      archived_at: null,
      cancel_initiated_at: b.cancelAt !== null ? new Date(b.cancelAt).toISOString() : null,
      results_url: ended ? `${origin}/v1/messages/batches/${b.id}/results` : null,
    };
  }

  /** The results once the batch has ended. As the API: a canceled batch keeps the results of the requests that had
   * finished before the cancel (and bills them); the others are `canceled`. */
  function finalItems(b: Batch) {
    const cancelAt = b.cancelAt;
    if (cancelAt === null) return b.items.map(({ custom_id, result }) => ({ custom_id, result }));
    return b.items.map((it) =>
      it.doneAt !== undefined && it.doneAt <= cancelAt ? { custom_id: it.custom_id, result: it.result } : { custom_id: it.custom_id, result: { type: "canceled" as const } },
    );
  }

  function calls(filter?: CallFilter): CallRecord[] {
    if (!filter) return [...log];
    if (typeof filter === "function") return log.filter(filter);
    return log.filter((c) => Object.entries(filter).every(([k, v]) => v === undefined || c[k as keyof CallRecord] === v));
  }

  function reset(scenario?: string) {
    if (scenario === undefined) {
      scripts.clear();
      faults.clear();
      log = [];
      cache.clear();
      batches.clear();
      batchStore.save();
      offset = 0;
      return;
    }
    scripts.clear(scenario);
    log = log.filter((c) => c.scenario !== scenario);
    cache.clear(scenario);
  }

  // ---- HTTP --------------------------------------------------------------------------------------------

  function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
    const data = JSON.stringify(body);
    res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(data), ...headers });
    res.end(data);
  }

  function sendApiError(res: ServerResponse, requestId: string, status: number, type: string, message: string, headers: Record<string, string> = {}) {
    sendJson(res, status, { type: "error", error: { type, message }, request_id: requestId }, { "request-id": requestId, ...headers });
  }

  function parseJson(buf: Buffer): unknown {
    try {
      return JSON.parse(buf.toString("utf8"));
    } catch {
      throw new HttpError(400, "There was an error parsing the body: it is not valid JSON.");
    }
  }

  async function handleControl(req: IncomingMessage, res: ServerResponse, url: URL) {
    const route = url.pathname.slice("/_double".length) || "/";
    const bad = (message: string) => sendJson(res, 400, { error: { type: "invalid_request_error", message } });
    if (req.method === "GET" && route === "/health") return sendJson(res, 200, { ok: true });
    if (route === "/scripts" && req.method === "POST") {
      const parsed = scriptBodySchema.safeParse(parseJson(await readBody(req, 32 << 20)));
      if (!parsed.success) return bad(parsed.error.issues.map((i) => `${i.path.join(".") || "body"}: ${i.message}`).join("; "));
      const pending = scripts.add(parsed.data.scenario, parsed.data.steps);
      return sendJson(res, 200, { scenario: parsed.data.scenario, pending });
    }
    if (route === "/scripts" && req.method === "GET") {
      const scenario = url.searchParams.get("scenario");
      if (!scenario) return bad("scenario: query parameter required");
      return sendJson(res, 200, { scenario, pending: scripts.pending(scenario), steps: scripts.list(scenario) });
    }
    if (route === "/calls" && req.method === "GET") {
      const q = url.searchParams;
      const includeBody = q.get("include_body") === "1" || q.get("include_body") === "true";
      const data = calls((c) => {
        if (q.has("scenario") && c.scenario !== q.get("scenario")) return false;
        if (q.has("kind") && c.kind !== q.get("kind")) return false;
        if (q.has("path") && c.path !== q.get("path")) return false;
        if (q.has("status") && String(c.status) !== q.get("status")) return false;
        if (q.has("batch_id") && c.batch_id !== q.get("batch_id")) return false;
        return true;
      }).map((c) => {
        if (includeBody) return c;
        const { body: _b, ...rest } = c;
        return rest;
      });
      return sendJson(res, 200, { data });
    }
    if (route === "/reset" && req.method === "POST") {
      const raw = await readBody(req, 1 << 20);
      const body = raw.length ? parseJson(raw) : {};
      const parsed = z.strictObject({ scenario: z.string().min(1).optional() }).safeParse(body);
      if (!parsed.success) return bad("body: expected { scenario?: string }");
      reset(parsed.data.scenario);
      return sendJson(res, 200, { ok: true });
    }
    if (route === "/rate-limits" && req.method === "POST") {
      const parsed = rateLimitConfigSchema.safeParse(parseJson(await readBody(req, 1 << 20)));
      if (!parsed.success) return bad(parsed.error.issues.map((i) => `${i.path.join(".") || "body"}: ${i.message}`).join("; "));
      limiter.configure(parsed.data);
      return sendJson(res, 200, { ok: true });
    }
    if (route === "/rate-limits" && req.method === "GET") return sendJson(res, 200, { refused: Object.fromEntries(limiter.refused) });
    if (route === "/faults" && req.method === "POST") {
      const parsed = faultsBodySchema.safeParse(parseJson(await readBody(req, 1 << 20)));
      if (!parsed.success) return bad(parsed.error.issues.map((i) => `${i.path.join(".") || "body"}: ${i.message}`).join("; "));
      return sendJson(res, 200, { ids: parsed.data.faults.map((f) => faults.add(f)), faults: faults.list() });
    }
    if (route === "/faults" && req.method === "GET") return sendJson(res, 200, { faults: faults.list() });
    if (route === "/faults" && req.method === "DELETE") {
      faults.clear();
      return sendJson(res, 200, { faults: [] });
    }
    if (route === "/clock" && req.method === "GET") return sendJson(res, 200, { now: clock.now() });
    if (route === "/clock" && req.method === "POST") {
      const parsed = z.strictObject({ advance_ms: z.number().min(0) }).safeParse(parseJson(await readBody(req, 1 << 20)));
      if (!parsed.success) return bad("body: expected { advance_ms: number >= 0 }");
      clock.advance(parsed.data.advance_ms);
      return sendJson(res, 200, { now: clock.now() });
    }
    return sendJson(res, 404, { error: { type: "not_found_error", message: `no control route ${req.method} ${url.pathname}` } });
  }

  async function handleMessages(req: IncomingMessage, res: ServerResponse, requestId: string, headerScenario: string | null) {
    const body = parseJson(await readBody(req, 32 << 20));
    const rawScenario = headerScenario ?? findScenario((body ?? {}) as object);
    const base = { method: "POST", path: "/v1/messages", kind: "messages" as const, request_id: requestId, body };
    const v = validate(body, "create", false);
    if (!v.ok) {
      record({ ...base, scenario: rawScenario, status: v.status, outcome: "invalid", error_type: v.type });
      return sendApiError(res, requestId, v.status, v.type, v.message);
    }
    const r = v.request;
    const facts = { ...requestFacts(r), scenario: rawScenario, stream: r.stream === true };
    const gate = limiter.admit(r.model, countInputTokens(r), r.max_tokens);
    if (!gate.ok) {
      record({ ...base, ...facts, status: 429, outcome: "rate_limited", error_type: gate.type });
      return sendApiError(res, requestId, 429, gate.type, gate.message, gate.headers);
    }
    const out = await runModel(r, rawScenario, "standard", true);
    if (out.kind === "error") {
      record({ ...base, ...facts, status: out.status, outcome: out.outcome, error_type: out.type });
      return sendApiError(res, requestId, out.status, out.type, out.message, { ...gate.settle(null), ...out.headers });
    }
    const limitHeaders = gate.settle(out.message.usage ?? null);
    record({ ...base, ...facts, status: 200, outcome: out.outcome, stop_reason: out.message.stop_reason, usage: out.message.usage });
    if (r.stream) return streamMessage(res, requestId, out.message, limitHeaders);
    sendJson(res, 200, out.message, { "request-id": requestId, ...limitHeaders });
  }

  /** Sends a message as the API's server-sent event sequence. */
  function streamMessage(res: ServerResponse, requestId: string, msg: Message, extraHeaders: Record<string, string> = {}) {
    res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", connection: "keep-alive", "request-id": requestId, ...extraHeaders });
    const send = (event: string, data: unknown) => res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    const { usage } = msg;
    send("message_start", {
      type: "message_start",
      message: { ...msg, content: [], stop_reason: null, stop_sequence: null, usage: { ...usage, output_tokens: Math.min(1, usage.output_tokens) } },
    });
    msg.content.forEach((block, index) => {
      if (block.type === "text") {
        send("content_block_start", { type: "content_block_start", index, content_block: { type: "text", text: "", citations: null } });
        if (index === 0) send("ping", { type: "ping" });
        for (let i = 0; i < block.text.length; i += 48) {
          send("content_block_delta", { type: "content_block_delta", index, delta: { type: "text_delta", text: block.text.slice(i, i + 48) } });
        }
      } else {
        send("content_block_start", { type: "content_block_start", index, content_block: { ...block, input: {} } });
        if (index === 0) send("ping", { type: "ping" });
        const json = JSON.stringify(block.input);
        send("content_block_delta", { type: "content_block_delta", index, delta: { type: "input_json_delta", partial_json: "" } });
        for (let i = 0; i < json.length; i += 32) {
          send("content_block_delta", { type: "content_block_delta", index, delta: { type: "input_json_delta", partial_json: json.slice(i, i + 32) } });
        }
      }
      send("content_block_stop", { type: "content_block_stop", index });
    });
    send("message_delta", {
      type: "message_delta",
      delta: { stop_reason: msg.stop_reason, stop_sequence: msg.stop_sequence, stop_details: null },
      usage: {
        input_tokens: usage.input_tokens,
        cache_creation_input_tokens: usage.cache_creation_input_tokens,
        cache_read_input_tokens: usage.cache_read_input_tokens,
        output_tokens: usage.output_tokens,
        server_tool_use: null,
        output_tokens_details: null,
      },
    });
    send("message_stop", { type: "message_stop" });
    res.end();
  }

  async function handleCountTokens(req: IncomingMessage, res: ServerResponse, requestId: string, headerScenario: string | null) {
    const body = parseJson(await readBody(req, 32 << 20));
    const scenario = headerScenario ?? findScenario((body ?? {}) as object);
    const base = { method: "POST", path: "/v1/messages/count_tokens", kind: "count_tokens" as const, request_id: requestId, scenario, body };
    const v = validate(body, "count_tokens", false);
    if (!v.ok) {
      record({ ...base, status: v.status, outcome: "invalid", error_type: v.type });
      return sendApiError(res, requestId, v.status, v.type, v.message);
    }
    record({ ...base, ...requestFacts(v.request), status: 200 });
    sendJson(res, 200, { input_tokens: countInputTokens(v.request) }, { "request-id": requestId });
  }

  async function createBatch(req: IncomingMessage, res: ServerResponse, requestId: string, headerScenario: string | null, origin: string) {
    const body = parseJson(await readBody(req, 256 << 20));
    const parsed = batchCreateSchema.safeParse(body);
    const base = { method: "POST", path: "/v1/messages/batches", kind: "batches" as const, request_id: requestId };
    if (!parsed.success) {
      const message = parsed.error.issues
        .slice(0, 5)
        .map((i) => `${i.path.join(".") || "body"}: ${/received undefined$/.test(i.message) ? "Field required" : i.message}`)
        .join("; ");
      record({ ...base, status: 400, outcome: "invalid", error_type: "invalid_request_error" });
      return sendApiError(res, requestId, 400, "invalid_request_error", message);
    }
    const ids = new Set<string>();
    for (const r of parsed.data.requests) {
      if (ids.has(r.custom_id)) {
        record({ ...base, status: 400, outcome: "invalid", error_type: "invalid_request_error" });
        return sendApiError(res, requestId, 400, "invalid_request_error", `requests: custom_id values must be unique within a batch; duplicate: ${r.custom_id}`);
      }
      ids.add(r.custom_id);
    }
    const now = clock.now();
    const batch: Batch = { id: newId("msgbatch_01"), createdAt: now, endsAt: now + batchDelayMs, cancelAt: null, items: [] };
    // Requests are run (and scripts consumed) now, in order; results are revealed when the batch ends.
    for (const r of parsed.data.requests) {
      const itemRequestId = newId("req_01");
      const scenario = headerScenario ?? findScenario(r.params);
      const itemBase = { method: "POST", path: "/v1/messages/batches", kind: "batch_request" as const, request_id: itemRequestId, scenario, batch_id: batch.id, custom_id: r.custom_id, body: r.params };
      // Params are validated asynchronously by the real API: a bad request becomes an `errored` result.
      const v = validate(r.params, "create", true);
      if (!v.ok) {
        record({ ...itemBase, status: v.status, outcome: "invalid", error_type: v.type });
        batch.items.push({ custom_id: r.custom_id, result: { type: "errored", error: { type: "error", error: { type: v.type, message: v.message }, request_id: itemRequestId } } });
        continue;
      }
      const facts = requestFacts(v.request);
      const out = await runModel(v.request, scenario, "batch", false);
      if (out.kind === "error") {
        record({ ...itemBase, ...facts, status: out.status, outcome: out.outcome, error_type: out.type });
        batch.items.push({ custom_id: r.custom_id, result: { type: "errored", error: { type: "error", error: { type: out.type, message: out.message }, request_id: itemRequestId } }, doneAt: now });
      } else {
        const rec = record({ ...itemBase, ...facts, status: 200, outcome: out.outcome, stop_reason: out.message.stop_reason, usage: out.message.usage });
        const doneAt = now + (out.latencyMs ?? batchDelayMs);
        batch.items.push({ custom_id: r.custom_id, result: { type: "succeeded", message: out.message }, doneAt, seq: rec.seq });
        batch.endsAt = Math.max(batch.endsAt, doneAt);
      }
    }
    batches.set(batch.id, batch);
    batchStore.save();
    record({ ...base, status: 200, batch_id: batch.id });
    sendJson(res, 200, batchView(batch, origin), { "request-id": requestId });
  }

  async function handleBatches(req: IncomingMessage, res: ServerResponse, url: URL, requestId: string, headerScenario: string | null, origin: string) {
    const parts = url.pathname.split("/").filter(Boolean); // v1 messages batches [id] [results|cancel]
    const id = parts[3];
    const action = parts[4];
    const base = { method: req.method ?? "GET", path: url.pathname, kind: "batches" as const, request_id: requestId };
    const notFound = () => {
      record({ ...base, status: 404, outcome: "invalid", error_type: "not_found_error", batch_id: id ?? null });
      sendApiError(res, requestId, 404, "not_found_error", `message_batch_id: no batch ${id}`);
    };
    if (!id && req.method === "POST") return createBatch(req, res, requestId, headerScenario, origin);
    if (!id && req.method === "GET") {
      const q = url.searchParams;
      const limit = Math.min(Math.max(Number(q.get("limit") ?? 20) || 20, 1), 1000);
      const all = [...batches.values()].sort((a, b) => b.createdAt - a.createdAt || (a.id < b.id ? 1 : -1));
      let start = 0;
      let end = all.length;
      const after = q.get("after_id");
      const before = q.get("before_id");
      if (after) start = all.findIndex((b) => b.id === after) + 1;
      if (before) end = Math.max(0, all.findIndex((b) => b.id === before));
      let page = all.slice(start, end);
      let has_more: boolean;
      if (before && !after) {
        has_more = page.length > limit;
        page = page.slice(-limit);
      } else {
        has_more = page.length > limit;
        page = page.slice(0, limit);
      }
      record({ ...base, status: 200 });
      return sendJson(res, 200, { data: page.map((b) => batchView(b, origin)), has_more, first_id: page[0]?.id ?? null, last_id: page.at(-1)?.id ?? null }, { "request-id": requestId });
    }
    const batch = id ? batches.get(id) : undefined;
    if (!batch) return notFound();
    const view = batchView(batch, origin);
    if (req.method === "GET" && !action) {
      record({ ...base, status: 200, batch_id: batch.id });
      return sendJson(res, 200, view, { "request-id": requestId });
    }
    if (req.method === "GET" && action === "results") {
      if (view.processing_status !== "ended") {
        record({ ...base, status: 400, outcome: "invalid", error_type: "invalid_request_error", batch_id: batch.id });
        return sendApiError(res, requestId, 400, "invalid_request_error", `Batch ${batch.id} is still ${view.processing_status}; results are available once it has ended.`);
      }
      record({ ...base, status: 200, batch_id: batch.id });
      const lines = finalItems(batch).map((it) => JSON.stringify(it)).join("\n") + "\n";
      res.writeHead(200, { "content-type": "application/x-jsonl", "content-length": Buffer.byteLength(lines), "request-id": requestId });
      return res.end(lines);
    }
    if (req.method === "POST" && action === "cancel") {
      if (view.processing_status === "in_progress") {
        const at = clock.now();
        batch.cancelAt = at;
        // The requests still processing are canceled and not billed: their call records say so.
        for (const it of batch.items) {
          if (it.doneAt !== undefined && it.doneAt <= at) continue;
          const rec = it.seq === undefined ? undefined : log.find((c) => c.seq === it.seq);
          if (rec) Object.assign(rec, { outcome: "canceled", usage: null });
        }
      }
      const out = batchView(batch, origin);
      // The cancel answer shows `canceling`; the next retrieve shows the batch ended: the requests done before the
      // cancel with their results, the others canceled.
      if (batch.cancelAt !== null && out.processing_status !== "ended") batch.endsAt = batch.cancelAt;
      batchStore.save();
      record({ ...base, status: 200, batch_id: batch.id });
      return sendJson(res, 200, out, { "request-id": requestId });
    }
    if (req.method === "DELETE" && !action) {
      if (view.processing_status !== "ended") {
        record({ ...base, status: 400, outcome: "invalid", error_type: "invalid_request_error", batch_id: batch.id });
        return sendApiError(res, requestId, 400, "invalid_request_error", `Batch ${batch.id} cannot be deleted while it is ${view.processing_status}; cancel it first.`);
      }
      batches.delete(batch.id);
      batchStore.save();
      record({ ...base, status: 200, batch_id: batch.id });
      return sendJson(res, 200, { id: batch.id, type: "message_batch_deleted" }, { "request-id": requestId });
    }
    return notFound();
  }

  /** Applies an outage fault; true when the request was answered (or dropped) by it. */
  async function applyFault(f: FaultAction, req: IncomingMessage, res: ServerResponse, r: { method: string; path: string; requestId: string; scenario: string | null }): Promise<boolean> {
    if (f.kind === "delay") {
      await sleep(f.ms);
      return false;
    }
    const buf = await readBody(req, 32 << 20).catch(() => Buffer.alloc(0));
    let scenario = r.scenario;
    try {
      scenario ??= findScenario((JSON.parse(buf.toString("utf8")) ?? {}) as object);
    } catch {
      /* not JSON: no scenario */
    }
    const kind: CallKind = r.path === "/v1/messages" ? "messages" : r.path === "/v1/messages/count_tokens" ? "count_tokens" : r.path.startsWith("/v1/messages/batches") ? "batches" : "other";
    const base = { method: r.method, path: r.path, kind, request_id: r.requestId, scenario, outcome: `fault:${f.kind}` };
    if (f.kind === "error") {
      const type = errorTypeFor(f.status);
      record({ ...base, status: f.status, error_type: type });
      sendApiError(res, r.requestId, f.status, type, DEFAULT_ERROR_MESSAGES[type] ?? "Error (an outage scripted in the offline double).");
    } else if (f.kind === "drop") {
      record({ ...base, status: 0, error_type: "connection_closed" });
      req.socket.destroy();
    } else {
      // Held without an answer until the client gives up (its timeout) or the double stops.
      record({ ...base, status: 0, error_type: "timeout" });
    }
    return true;
  }

  async function handle(req: IncomingMessage, res: ServerResponse) {
    const host = req.headers.host ?? `127.0.0.1:${port}`;
    const origin = `http://${host}`;
    const url = new URL(req.url ?? "/", origin);
    if (url.pathname === "/_double" || url.pathname.startsWith("/_double/")) return handleControl(req, res, url);

    const requestId = newId("req_01");
    const method = req.method ?? "GET";
    const headerScenario = (req.headers[SCENARIO_HEADER] as string | undefined) || null;
    const fail = (status: number, message: string, type = errorTypeFor(status)) => {
      record({ method, path: url.pathname, kind: "other", status, request_id: requestId, outcome: "invalid", error_type: type, scenario: headerScenario });
      sendApiError(res, requestId, status, type, message);
    };

    const apiKey = req.headers["x-api-key"];
    const bearer = /^Bearer\s+\S+/i.test(req.headers.authorization ?? "");
    if (!(typeof apiKey === "string" && apiKey.length > 0) && !bearer) {
      return fail(401, "invalid x-api-key: send an API key in `x-api-key` or `Authorization: Bearer` (any value works with the offline double)");
    }
    if (!req.headers["anthropic-version"]) return fail(400, "anthropic-version: header is required");

    const p = url.pathname.replace(/\/+$/, "");
    const fault = p.startsWith("/v1/") ? faults.decide(p) : null;
    if (fault && (await applyFault(fault, req, res, { method, path: p, requestId, scenario: headerScenario }))) return;
    if (p === "/v1/messages" && method === "POST") return handleMessages(req, res, requestId, headerScenario);
    if (p === "/v1/messages/count_tokens" && method === "POST") return handleCountTokens(req, res, requestId, headerScenario);
    if (p === "/v1/messages/batches" || p.startsWith("/v1/messages/batches/")) return handleBatches(req, res, url, requestId, headerScenario, origin);
    return fail(404, `Not found: ${method} ${url.pathname} is not served by the offline Claude double`);
  }

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      const requestId = newId("req_01");
      if (res.headersSent) return res.destroy();
      if (err instanceof HttpError) return sendApiError(res, requestId, err.status, err.type, err.message);
      opts.log?.(`[claude-double] internal error: ${(err as Error)?.stack ?? String(err)}`);
      sendApiError(res, requestId, 500, "api_error", `offline double internal error: ${(err as Error)?.message ?? String(err)}`);
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, opts.host ?? "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const host = opts.host && opts.host !== "0.0.0.0" && opts.host !== "::" ? opts.host : "127.0.0.1";
  const url = `http://${host.includes(":") ? `[${host}]` : host}:${port}`;

  return {
    url,
    port,
    clock,
    rateLimits: limiter,
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
    script: (scenario, steps) => scripts.add(scenario, steps),
    pending: (scenario) => scripts.pending(scenario),
    calls,
    reset,
    faults: { add: (spec) => faults.add(spec), list: () => faults.list(), clear: () => faults.clear() },
  };
}
