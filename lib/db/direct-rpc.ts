// One PostgREST function call without supabase-js's request machinery, for the hottest path (submitTask: every
// POST /api/tasks). The same request supabase-js sends — POST <SUPABASE_URL>/rest/v1/rpc/<fn> with the secret key as
// `apikey` and Bearer, the arguments as a JSON object — over the same kept-alive sockets (lib/net/keepalive-fetch.ts),
// and the same `{ data, error, status }` back, with the error shapes supabase-js gives (status 0 for a network error).
// What it skips per call: auth-js's session lookup behind its lock (supabase-js asks it for a token on every request,
// even with no session), the query builder, URL and Headers objects, and a Response per answer — ~0.2–0.3 ms of the
// server's CPU per POST on this box (docs/benchmarks.md, session 7). Callers still check what comes back (zod).
//
// Available for clients made by createAdminClient (which registers the URL and key here); any other client, or a
// process that must reach the database through an HTTP(S) proxy, gets null and uses supabase-js.
import { postText, proxyConfigured } from "@/lib/net/keepalive-fetch";
import { databaseCallStarted, isUnreachableStatus, noteDatabaseReached, noteDatabaseUnreachable } from "./reachability";

export interface RpcError {
  code: string;
  message: string;
  details?: string | null;
  hint?: string | null;
}

export interface RpcResult {
  data: unknown;
  error: RpcError | null;
  status: number;
}

interface Target {
  base: string;
  headers: Record<string, string>;
  urls: Map<string, URL>;
}

// On globalThis, not in a module variable: Next may load a module more than once in one process (one copy per bundle
// layer), and a client registered by one copy of this module must be found by the others (as lib/outbox.ts does).
const REGISTRY = Symbol.for("nightshift.db.direct-rpc");
const targets: WeakMap<object, Target> = ((globalThis as { [REGISTRY]?: WeakMap<object, Target> })[REGISTRY] ??= new WeakMap());

/** Called by createAdminClient for the client it makes: how to reach its PostgREST directly. */
export function registerDirectRpc(client: object, supabaseUrl: string, secretKey: string): void {
  targets.set(client, {
    base: `${supabaseUrl.replace(/\/+$/, "")}/rest/v1/rpc/`,
    headers: {
      apikey: secretKey,
      authorization: `Bearer ${secretKey}`,
      "content-type": "application/json",
      // What postgrest-js sends for the default schema.
      "content-profile": "public",
    },
    urls: new Map(),
  });
}

/**
 * Calls `fn` with `args` as supabase-js's `db.rpc(fn, args)` would; null when this client cannot be called directly
 * (then call db.rpc).
 */
export function directRpc(client: object, fn: string, args: Record<string, unknown>): Promise<RpcResult> | null {
  const target = targets.get(client);
  if (!target || proxyConfigured()) return null;
  return call(target, fn, args);
}

async function call(target: Target, fn: string, args: Record<string, unknown>): Promise<RpcResult> {
  let res: { status: number; body: string };
  const startedAt = databaseCallStarted();
  try {
    let url = target.urls.get(fn);
    if (!url) target.urls.set(fn, (url = new URL(target.base + encodeURIComponent(fn))));
    res = await postText(url, { ...target.headers }, JSON.stringify(args));
  } catch (err) {
    noteDatabaseUnreachable();
    // postgrest-js's shape for a request that got no answer (status 0, no code; the cause in the details).
    const e = err as { name?: string; message?: string; code?: string };
    const message = `${e.name ?? "Error"}: ${e.message ?? String(err)}`;
    return { data: null, status: 0, error: { code: "", message, details: e.code ? `${message} (${e.code})` : message } };
  }
  if (res.status >= 200 && res.status < 300) {
    noteDatabaseReached(startedAt);
    if (res.body === "") return { data: null, error: null, status: res.status };
    try {
      return { data: JSON.parse(res.body) as unknown, error: null, status: res.status };
    } catch {
      return { data: null, status: res.status, error: { code: "", message: `unparsable answer: ${res.body.slice(0, 200)}` } };
    }
  }
  if (isUnreachableStatus(res.status)) noteDatabaseUnreachable();
  else noteDatabaseReached(startedAt);
  // PostgREST's errors are JSON { code, message, details, hint }; a gateway's may be anything.
  let error: RpcError;
  try {
    const parsed = JSON.parse(res.body) as Partial<RpcError> | null;
    error = {
      code: typeof parsed?.code === "string" ? parsed.code : "",
      message: typeof parsed?.message === "string" ? parsed.message : res.body,
      details: parsed?.details ?? null,
      hint: parsed?.hint ?? null,
    };
  } catch {
    error = { code: "", message: res.body };
  }
  return { data: null, error, status: res.status };
}
