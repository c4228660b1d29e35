// A `fetch` over node:http(s) with a keep-alive agent, for the server's own small JSON requests: the Inngest client's
// (inngest/client.ts: a checkpoint after every step, POST /v1/checkpoint/{runId}/async, and event sends) and the
// Supabase admin client's (lib/db/admin.ts: every PostgREST call, e.g. POST /api/tasks's one submit_task RPC).
//
// Why: the global fetch (undici's WHATWG streams, plus Next's patch of it inside route handlers) costs ~0.75–1.0 ms of
// CPU and wall time per small request on this machine against ~0.44 ms for http.request on a kept-alive socket
// (docs/benchmarks.md). Only the simple shape those clients send is handled here: an http(s) URL, a string or byte
// body, plain headers or a Headers. Anything else (streams, Request objects, a proxy from the environment) goes to the
// global fetch unchanged, and so does a redirect's next request (never the first one again), so behaviour never
// depends on which path a request took.
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import { brotliDecompressSync, gunzipSync, inflateSync } from "node:zlib";

// An idle kept-alive socket is closed after 4 s (undici's keepAliveTimeout, which the global fetch uses), or a
// second before the server's `Keep-Alive: timeout=N` hint when that is shorter: Node's agent applies the hint only
// when it is below the agent's `timeout`, and without one it keeps idle sockets until the server drops them, so a
// request could race the server's close. Free sockets are unref'd by the agent: they never hold the process open.
const IDLE_SOCKET_MS = 4_000;
const httpAgent = new HttpAgent({ keepAlive: true, maxSockets: 64, timeout: IDLE_SOCKET_MS });
const httpsAgent = new HttpsAgent({ keepAlive: true, maxSockets: 64, timeout: IDLE_SOCKET_MS });

/** Methods a client may repeat on its own (RFC 9110 9.2.2): only these are resent after a dropped kept-alive socket. */
const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "PUT", "DELETE"]);

/** As undici's defaults (headersTimeout / bodyTimeout): a silent peer fails the request after 300 s. */
const IDLE_TIMEOUT_MS = 300_000;

const REDIRECT = new Set([301, 302, 303, 307, 308]);
const NULL_BODY = new Set([101, 103, 204, 205, 304]);

type FetchArgs = Parameters<typeof fetch>;

export function proxyConfigured(): boolean {
  const env = process.env;
  return Boolean(env["HTTPS_PROXY"] || env["https_proxy"] || env["HTTP_PROXY"] || env["http_proxy"]);
}

function plainHeaders(h: HeadersInit | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!h) return out;
  const proto = Object.getPrototypeOf(h) as unknown;
  if (proto === Object.prototype || proto === null) {
    // What the SDK passes: a plain object (undefined values left out, as its spreads of optional headers mean).
    for (const [k, v] of Object.entries(h)) if (v !== undefined) out[k.toLowerCase()] = String(v);
    return out;
  }
  // A Headers (of any realm) or a list of pairs: read through a Headers, as fetch would.
  new Headers(h).forEach((v, k) => (out[k] = v));
  return out;
}

function responseOf(res: IncomingMessage, body: Buffer, method: string): Response {
  const raw = res.rawHeaders;
  const status = res.statusCode ?? 0;
  const init = { status, statusText: res.statusMessage ?? "" };
  if (NULL_BODY.has(status) || method === "HEAD") return new Response(null, { ...init, headers: headerPairs(raw) });
  return new BufferedResponse(decoded(body, rawHeader(raw, "content-encoding")), init, raw);
}

function headerPairs(raw: string[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) out.push([raw[i]!, raw[i + 1]!]);
  return out;
}

/** A header's value as Headers.get gives it: every occurrence, in order, joined with ", "; null when absent. */
function rawHeader(raw: string[], name: string): string | null {
  let out: string | null = null;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (raw[i]!.length === name.length && raw[i]!.toLowerCase() === name) out = out === null ? raw[i + 1]!.trim() : `${out}, ${raw[i + 1]!.trim()}`;
  }
  return out;
}

/**
 * The body as the global fetch gives it: decompressed. Compression is never asked for here (no Accept-Encoding),
 * but a server or proxy that compresses anyway must not hand the SDK gzip bytes as JSON. Throws on a corrupt body
 * (reported as a network error, like the global fetch's).
 */
function decoded(body: Buffer, encoding: string | null): Buffer {
  if (!encoding || body.length === 0) return body;
  let out = body;
  // Codings apply in the order listed, so they are undone last to first.
  for (const coding of encoding.toLowerCase().split(",").map((c) => c.trim()).reverse()) {
    if (coding === "gzip" || coding === "x-gzip") out = gunzipSync(out);
    else if (coding === "deflate") out = inflateSync(out);
    else if (coding === "br") out = brotliDecompressSync(out);
    else if (coding !== "identity" && coding !== "") return body; // unknown: left as is, as the global fetch does
  }
  return out;
}

/** Decodes as Response.text() does (UTF-8, a leading BOM dropped, invalid bytes as U+FFFD); stateless between calls. */
const utf8 = new TextDecoder();

/**
 * A Response whose body is already in memory. undici's Response builds a ReadableStream for every body (~0.05–0.1 ms
 * of CPU), and the SDK never reads the answer to a checkpoint; so the real Response (with its stream) is made only
 * when something touches the body as a stream: `body`, a read other than `text()`/`json()`, or `clone()`. `text()`
 * and `json()` — all that supabase-js and the SDK call — decode the bytes directly (~0.2 ms less per PostgREST call
 * than through the stream), with a read-once rule of their own. Its headers are built when first read.
 */
class BufferedResponse extends Response {
  readonly #bytes: Buffer;
  readonly #init: ResponseInit;
  readonly #rawHeaders: string[];
  #headers: Headers | undefined;
  #real: Response | undefined;
  /** Read by text()/json() without a real Response. */
  #read = false;

  constructor(bytes: Buffer, init: ResponseInit, rawHeaders: string[]) {
    super(null, init);
    this.#bytes = bytes;
    this.#init = init;
    this.#rawHeaders = rawHeaders;
  }

  /**
   * The headers, built on first use (~0.01–0.05 ms of CPU per response otherwise: the SDK reads only `status` and `ok`
   * of a checkpoint's answer), through a Response (its guard, as before); the same object on every read.
   */
  headersOnce(): Headers {
    return (this.#headers ??= new Response(null, { headers: headerPairs(this.#rawHeaders) }).headers);
  }

  real(): Response {
    if (!this.#real) {
      this.#real = new Response(this.#bytes as unknown as BodyInit, { ...this.#init, headers: this.headersOnce() });
      // Already read directly: the real one must look read too (bodyUsed, a second read or clone() fails).
      if (this.#read) this.#real.arrayBuffer().catch(() => {});
    }
    return this.#real;
  }

  get used(): boolean {
    return this.#real ? this.#real.bodyUsed : this.#read;
  }

  override text(): Promise<string> {
    if (this.#real) return this.#real.text();
    if (this.#read) return Promise.reject(new TypeError("Body is unusable: Body has already been read"));
    this.#read = true;
    return Promise.resolve(utf8.decode(this.#bytes));
  }
  override json(): Promise<unknown> {
    if (this.#real) return this.#real.json();
    return this.text().then((t) => JSON.parse(t) as unknown);
  }
  override arrayBuffer(): Promise<ArrayBuffer> {
    return this.real().arrayBuffer();
  }
  override blob(): Promise<Blob> {
    return this.real().blob();
  }
  override bytes(): Promise<Uint8Array<ArrayBuffer>> {
    return this.real().bytes();
  }
  override formData(): Promise<FormData> {
    return this.real().formData();
  }
  override clone(): Response {
    return this.real().clone();
  }
}
// `body` and `bodyUsed` are accessors on Response.prototype (properties in TypeScript's view): shadowed here.
Object.defineProperties(BufferedResponse.prototype, {
  body: { get(this: BufferedResponse) { return this.real().body; }, configurable: true },
  headers: { get(this: BufferedResponse) { return this.headersOnce(); }, configurable: true },
  bodyUsed: { get(this: BufferedResponse) { return this.used; }, configurable: true },
});

type Attempt = { res: IncomingMessage; body: Buffer } | { redirect: number; location: string };

function once(url: URL, method: string, headers: Record<string, string>, body: string | Uint8Array | undefined,
  signal: AbortSignal | undefined, fresh: boolean): Promise<Attempt> {
  return new Promise((resolve, reject) => {
    const https = url.protocol === "https:";
    const req = (https ? httpsRequest : httpRequest)(
      url,
      { method, headers, agent: fresh ? false : https ? httpsAgent : httpAgent, timeout: IDLE_TIMEOUT_MS },
      (res) => {
        // A redirect without a Location is an answer like any other (fetch returns it as is).
        if (REDIRECT.has(res.statusCode ?? 0) && res.headers.location !== undefined) {
          res.resume();
          return resolve({ redirect: res.statusCode!, location: res.headers.location });
        }
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ res, body: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks) }));
        res.on("error", reject);
      },
    );
    const onAbort = () => req.destroy(signal?.reason instanceof Error ? signal.reason : new Error("aborted"));
    if (signal) {
      if (signal.aborted) onAbort();
      else signal.addEventListener("abort", onAbort, { once: true });
      req.once("close", () => signal.removeEventListener("abort", onAbort));
    }
    req.on("timeout", () => req.destroy(new Error(`no answer within ${IDLE_TIMEOUT_MS} ms`)));
    req.on("error", (err) => reject(Object.assign(err, { reused: req.reusedSocket })));
    req.end(body);
  });
}

/** Request-body headers (WHATWG fetch): dropped when a redirect turns the request into a bodiless GET. */
const BODY_HEADERS = ["content-encoding", "content-language", "content-location", "content-type"];

/**
 * The request fetch makes after a redirect (WHATWG fetch, "HTTP-redirect fetch", as undici does it): the Location
 * resolved against the URL; 301/302 after a POST and 303 after anything but GET/HEAD become a GET without a body; a
 * cross-origin hop drops the credentials. Content-Length is left to the global fetch.
 */
function redirected(url: URL, status: number, location: string, method: string, init: RequestInit | undefined): [URL, RequestInit] {
  const next = new URL(location, url);
  const headers = plainHeaders(init?.headers);
  delete headers["content-length"];
  let nextMethod = method;
  let body = init?.body;
  if (((status === 301 || status === 302) && method === "POST") || (status === 303 && method !== "GET" && method !== "HEAD")) {
    nextMethod = "GET";
    body = undefined;
    for (const k of BODY_HEADERS) delete headers[k];
  }
  if (next.origin !== url.origin) for (const k of ["authorization", "proxy-authorization", "cookie"]) delete headers[k];
  return [next, { ...init, method: nextMethod, headers, body }];
}

/** A `fetch` for small API requests: keep-alive node:http(s) for simple requests, else the global one. */
export async function keepAliveFetch(...[input, init]: FetchArgs): Promise<Response> {
  const url = typeof input === "string" ? URL.canParse(input) ? new URL(input) : undefined : input instanceof URL ? input : undefined;
  const rawBody = init?.body;
  const body = rawBody === undefined || rawBody === null ? undefined : typeof rawBody === "string" || rawBody instanceof Uint8Array ? rawBody : null;
  const headers = plainHeaders(init?.headers);
  const simple =
    url !== undefined &&
    (url.protocol === "http:" || url.protocol === "https:") &&
    body !== null &&
    (init?.redirect === undefined || init.redirect === "follow") &&
    !proxyConfigured();
  if (!simple) return globalThis.fetch(input, init);
  const method = (init?.method ?? "GET").toUpperCase();
  if (body !== undefined) headers["content-length"] = String(Buffer.byteLength(body));
  // As fetch does for a string body sent without a type.
  if (typeof body === "string" && headers["content-type"] === undefined) headers["content-type"] = "text/plain;charset=UTF-8";
  const signal = init?.signal ?? undefined;
  let attempt: Attempt;
  try {
    try {
      attempt = await once(url, method, headers, body, signal, false);
    } catch (err) {
      // A kept-alive socket reset before any answer (`request.reusedSocket`, Node's advice): usually the server had
      // closed it while idle, but the server may also have received the request and died before answering, so only
      // an idempotent request is sent again here. A POST (every checkpoint and event send) fails as the global
      // fetch's would, and the SDK's own retry (retryWithBackoff) decides, as it does with the global fetch.
      const e = err as { reused?: boolean; code?: string };
      if (!(e.reused && e.code === "ECONNRESET") || !IDEMPOTENT.has(method) || signal?.aborted) throw err;
      attempt = await once(url, method, headers, body, signal, true);
    }
  } catch (err) {
    if (signal?.aborted) throw signal.reason ?? err;
    // The global fetch's shape for network errors, which the SDK's fetch wrapper recognises.
    throw new TypeError("fetch failed", { cause: err });
  }
  // Redirects are the global fetch's business (it follows them with its own rules), from the request that follows
  // this answer: handing it the original request would send that request a second time (a POST answered 303 has
  // been acted on by the server, which names where to GET the outcome).
  if ("redirect" in attempt) {
    let next: [URL, RequestInit];
    try {
      next = redirected(url, attempt.redirect, attempt.location, method, init);
    } catch (err) {
      throw new TypeError("fetch failed", { cause: err });
    }
    return globalThis.fetch(...next);
  }
  try {
    return responseOf(attempt.res, attempt.body, method);
  } catch (err) {
    throw new TypeError("fetch failed", { cause: err });
  }
}

/**
 * A POST on the same kept-alive sockets for a caller that reads the answer itself (lib/db/direct-rpc.ts): no Headers,
 * no Response, the body as text. Never sent twice (a POST). A network error, a redirect or a corrupt compressed body
 * rejects. Not for a process with an HTTP(S)_PROXY (see proxyConfigured).
 */
export async function postText(url: URL, headers: Record<string, string>, body: string): Promise<{ status: number; body: string }> {
  headers["content-length"] = String(Buffer.byteLength(body));
  const attempt = await once(url, "POST", headers, body, undefined, false);
  if ("redirect" in attempt) throw new Error(`unexpected redirect (${attempt.redirect}) to ${attempt.location}`);
  const { res } = attempt;
  const encoding = res.headers["content-encoding"];
  return { status: res.statusCode ?? 0, body: utf8.decode(decoded(attempt.body, encoding ?? null)) };
}
