// The engine's HTTP face: the SDK's register call, the event API, and a small read API.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Executor } from "./executor";
import { eventSchema, parseCheckpointBody, registerSchema } from "./protocol";
import { safeEqual, verifyBearer } from "./signing";
import type { Store } from "./store";
import { nowUs, traceMark, tracing } from "./trace";
import { runDetail, runView, v1RunView } from "./views";

const MAX_BODY = 16 * 1024 * 1024;

export interface HttpDeps {
  executor: Executor;
  store: Store;
  signingKey?: string;
  eventKey?: string;
  log: (line: string) => void;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export function createEngineServer(deps: HttpDeps): Server {
  return createServer((req, res) => {
    if (tracing) arrivals.set(req, nowUs());
    handle(deps, req, res).catch((err: unknown) => {
      const status = err instanceof HttpError ? err.status : 500;
      const message = err instanceof Error ? err.message : String(err);
      if (status === 500) deps.log(`engine http error: ${message}`);
      send(res, status, { error: message, status });
    });
  });
}

/** A checkpoint's URL as the SDK sends it (a ULID run id): routed without building a URL, once per step. Any other
 * form (percent-escapes, a query, a trailing slash…) takes the general route below, to the same handler. */
const CHECKPOINT_URL = /^\/v1\/checkpoint\/([A-Za-z0-9_-]+)\/async$/;

/**
 * A request a web page sent: browsers mark every request a page makes (`Origin` on POSTs and cross-origin fetches,
 * `Sec-Fetch-Site` other than `none` — `none` is a URL typed in the address bar); the SDK, the app and Inngest never
 * send either. Refused, whatever the route: in dev mode the engine authenticates nothing, and a page's "simple"
 * text/plain POST needs no CORS preflight — any site the developer opened could register functions (and receive every
 * run's events and step data) or inject events (docs/security.md, session 9). The same rule as the app's /api/inngest.
 */
function sentByAWebPage(req: IncomingMessage): boolean {
  const site = req.headers["sec-fetch-site"];
  return req.headers.origin !== undefined || (site !== undefined && String(site).toLowerCase() !== "none");
}

async function handle(deps: HttpDeps, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (sentByAWebPage(req)) {
    throw new HttpError(403, "the local Inngest engine takes no requests from web pages (Origin / Sec-Fetch-Site)");
  }
  if (req.method === "POST") {
    const fast = CHECKPOINT_URL.exec(req.url ?? "");
    if (fast) return checkpoint(deps, fast[1]!, req, res);
  }
  const url = new URL(req.url ?? "/", "http://engine.local");
  const path = url.pathname.replace(/\/+$/, "") || "/";
  const method = req.method ?? "GET";

  if (method === "POST" && path === "/fn/register") return register(deps, req, res);
  const ev = /^\/e\/([^/]*)$/.exec(path);
  if (method === "POST" && ev) return events(deps, decodeURIComponent(ev[1] ?? ""), req, res);
  if (method === "GET" && (path === "/health" || path === "/")) {
    return send(res, 200, { status: "ok", mode: deps.signingKey ? "cloud" : "dev", execution: deps.executor.mode });
  }
  const cp = /^\/v1\/checkpoint\/([^/]+)\/async$/.exec(path);
  if (method === "POST" && cp) return checkpoint(deps, decodeURIComponent(cp[1]!), req, res);
  if (method === "POST" && (path === "/v1/checkpoint" || /^\/v1\/checkpoint\/[^/]+\/steps$/.test(path))) {
    // Sync checkpointing serves durable endpoints (StepMode.Sync), which the app does not use.
    throw new HttpError(501, "sync checkpointing (durable endpoints) is not implemented by the local engine");
  }

  if (method === "GET" && (path.startsWith("/v0/") || path.startsWith("/v1/"))) {
    // In signed mode the read API wants the signing key, as Inngest's REST API does.
    if (deps.signingKey && !verifyBearer(req.headers.authorization, deps.signingKey)) throw new HttpError(401, "unauthorized");
    if (path === "/v0/runs") {
      const runs = await deps.store.listRuns({
        status: url.searchParams.get("status") ?? undefined,
        function_id: url.searchParams.get("function_id") ?? undefined,
        event_id: url.searchParams.get("event_id") ?? undefined,
        limit: Number(url.searchParams.get("limit") ?? 100) || 100,
      });
      return send(res, 200, { data: runs.map(runView) });
    }
    const one = /^\/v0\/runs\/([^/]+)$/.exec(path);
    if (one) {
      const run = await deps.store.getRun(decodeURIComponent(one[1]!));
      if (!run) throw new HttpError(404, "run not found");
      return send(res, 200, runDetail(run, await deps.store.history(run.id)));
    }
    const byEvent = /^\/v1\/events\/([^/]+)\/runs$/.exec(path);
    if (byEvent) {
      const runs = await deps.store.listRuns({ event_id: decodeURIComponent(byEvent[1]!), limit: 1000 });
      return send(res, 200, { data: runs.map(v1RunView) });
    }
    const v1run = /^\/v1\/runs\/([^/]+)$/.exec(path);
    if (v1run) {
      const run = await deps.store.getRun(decodeURIComponent(v1run[1]!));
      if (!run) throw new HttpError(404, "run not found");
      return send(res, 200, { data: v1RunView(run) });
    }
  }
  throw new HttpError(404, `no route for ${method} ${path}`);
}

async function register(deps: HttpDeps, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (deps.signingKey && !verifyBearer(req.headers.authorization, deps.signingKey)) {
    return send(res, 401, { status: 401, error: "sync refused: the app's signing key does not match the engine's" });
  }
  const parsed = registerSchema.safeParse(await readJson(req));
  if (!parsed.success) {
    return send(res, 400, { status: 400, error: `invalid register payload: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}` });
  }
  const result = await deps.executor.registerApp(parsed.data);
  if (!result.ok) {
    const error = `sync of app "${parsed.data.appName}" failed:\n- ${result.errors.join("\n- ")}`;
    deps.log(error);
    return send(res, 400, { status: 400, error });
  }
  return send(res, 200, { status: 200, ok: true, modified: true, functions: result.functions });
}

async function checkpoint(deps: HttpDeps, runId: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (deps.signingKey && !verifyBearer(req.headers.authorization, deps.signingKey)) throw new HttpError(401, "unauthorized");
  const raw = await readJson(req);
  const readAt = tracing ? nowUs() : 0;
  const parsed = parseCheckpointBody(raw);
  if (!parsed.success) {
    throw new HttpError(400, `invalid checkpoint: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
  }
  if (parsed.data.run_id !== runId) throw new HttpError(400, "run_id in the body does not match the path");
  const key = tracing ? `${runId}:${parsed.data.steps[0]?.id}` : "";
  if (tracing) {
    traceMark(key, "in", arrivals.get(req));
    traceMark(key, "read", readAt);
    traceMark(key, "parsed");
  }
  // Answered from inside the commit, the moment the steps are durable: the log lines, the run lock's release and the
  // promise hops back to here come after the answer, not before it.
  let acked = false;
  const ack = () => {
    acked = true;
    if (tracing) traceMark(key, "answering");
    if (res.headersSent) return;
    res.writeHead(200, CHECKPOINT_OK_HEADERS);
    res.end(CHECKPOINT_OK);
    if (tracing) traceMark(key, "answered");
  };
  const out = await deps.executor.checkpoint(runId, parsed.data, ack);
  if (acked) return;
  if (out.status !== 200) return send(res, out.status, { status: out.status, error: out.error });
  ack();
}

/** When each request arrived (the server's 'request' event), while tracing (local/engine/trace.ts). */
const arrivals = new WeakMap<IncomingMessage, number>();

// The answer to every accepted checkpoint (once per step): built once.
const CHECKPOINT_OK = Buffer.from(JSON.stringify({ status: 200 }));
const CHECKPOINT_OK_HEADERS = { "content-type": "application/json", "content-length": String(CHECKPOINT_OK.length) };

async function events(deps: HttpDeps, key: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (deps.eventKey && !safeEqual(key, deps.eventKey)) {
    return send(res, 401, { status: 401, error: "Event key not found" });
  }
  const body = await readJson(req);
  const list = Array.isArray(body) ? body : [body];
  const valid = [];
  for (const [i, e] of list.entries()) {
    const p = eventSchema.safeParse(e);
    if (!p.success) {
      return send(res, 400, { status: 400, error: `event ${i}: ${p.error.issues.map((x) => `${x.path.join(".") || "(root)"}: ${x.message}`).join("; ")}` });
    }
    valid.push(p.data);
  }
  const ids = await deps.executor.ingest(valid);
  return send(res, 200, { ids, status: 200 });
}

/**
 * The body as JSON. Read with 'data'/'end' listeners: the async iterator (for await) costs a promise and a
 * microtask hop per chunk, on the checkpoint path once per step.
 */
function readJson(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    req.on("data", (chunk: Buffer) => {
      if (failed) return;
      size += chunk.length;
      if (size > MAX_BODY) {
        failed = true;
        // Stop reading; what was sent is discarded (the 413 is answered by the caller).
        req.resume();
        reject(new HttpError(413, "request body too large"));
        return;
      }
      chunks.push(chunk);
    });
    req.on("error", (err) => {
      if (failed) return;
      failed = true;
      reject(err);
    });
    req.on("end", () => {
      if (failed) return;
      const text = chunks.length === 1 ? chunks[0]!.toString("utf8") : Buffer.concat(chunks).toString("utf8");
      if (!text) return resolve(null);
      try {
        resolve(JSON.parse(text));
      } catch {
        reject(new HttpError(400, "body is not valid JSON"));
      }
    });
  });
}

function send(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}
