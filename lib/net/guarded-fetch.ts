// The one HTTP client for every outbound call to a URL a user (or a model) supplied: web_fetch, task callbacks,
// webhook deliveries. It exists so that server-side request forgery is impossible by construction, not checked
// case by case:
//
// - only absolute http(s) URLs without credentials;
// - the host is resolved ONCE, every address it resolves to is judged by the address rule
//   (lib/agents/tools/ip.ts: public unicast only, unless allow-listed), and the socket then connects to the exact
//   address that was checked — the request carries a `lookup` that returns it, so a name that "rebinds" to a
//   private address between check and connect gains nothing;
// - every redirect hop is a new URL and goes through the same check (or is handed back unfollowed);
// - no pooled sockets (`agent: false`), so a connection checked for one host is never reused for another.
//
// The URL's host name still drives the Host header and TLS (SNI and certificate verification), so virtual hosting
// and HTTPS work as usual. The response body is handed back as a stream: callers cap what they read.
import { lookup as dnsLookup } from "node:dns/promises";
import http from "node:http";
import https from "node:https";
import type { LookupFunction } from "node:net";
import { classifyAddress, ipFamily, parseAllowList, type AllowList } from "@/lib/agents/tools/ip";

export interface ResolvedAddress {
  address: string;
  family: number;
}
/** Resolves a host name to all of its addresses. */
export type Resolver = (hostname: string) => Promise<ResolvedAddress[]>;
export type ConnectObserver = (target: { url: string; host: string; address: string; port: number }) => void;

export type GuardedFetchErrorKind = "invalid_url" | "refused" | "unresolved" | "redirects" | "network";

/** Why a guarded request did not produce a response. `refused`/`invalid_url` are permanent; the rest may pass. */
export class GuardedFetchError extends Error {
  constructor(
    readonly kind: GuardedFetchErrorKind,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "GuardedFetchError";
  }
}

export interface GuardedFetchOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  /** Hosts, addresses and CIDRs (optionally `:port`) that bypass the private-address check (NIGHTSHIFT_FETCH_ALLOW). */
  allow?: readonly string[] | AllowList;
  /** DNS resolution (all addresses of a name). Default: the OS resolver. Tests inject a rebinding one. */
  resolve?: Resolver;
  /** Told the exact address right before every connection. */
  onConnect?: ConnectObserver;
  signal?: AbortSignal;
  /**
   * How many redirects to follow (each re-checked). 0 (the default) hands a redirect back as the response, like
   * `fetch(..., { redirect: "manual" })`. 303 (and 301/302 for non-GET) continue as a GET without a body.
   */
  maxRedirects?: number;
  /** Named in refusal messages ("web_fetch only reaches public addresses"). */
  purpose?: string;
}

export interface GuardedResponse {
  /** The URL of this response (after any redirects that were followed). */
  url: string;
  status: number;
  headers: http.IncomingHttpHeaders;
  /** The address the socket connected to. */
  address: string;
  /** The body, unread. Read it (with a cap) or `destroy()` it. */
  body: http.IncomingMessage;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

export const systemResolver: Resolver = async (hostname) =>
  (await dnsLookup(hostname, { all: true, verbatim: true })).map((a) => ({ address: a.address, family: a.family }));

export async function guardedFetch(rawUrl: string | URL, opts: GuardedFetchOptions = {}): Promise<GuardedResponse> {
  const allow = isAllowList(opts.allow) ? opts.allow : parseAllowList(opts.allow ?? []);
  const resolve = opts.resolve ?? systemResolver;
  const maxRedirects = opts.maxRedirects ?? 0;
  const signal = opts.signal;
  let url = parseTarget(String(rawUrl));
  let method = (opts.method ?? "GET").toUpperCase();
  let body = opts.body;
  let headers = { ...(opts.headers ?? {}) };

  for (let hop = 0; ; hop++) {
    const target = await resolveAndCheck(url, allow, resolve, signal, opts.purpose);
    let res: http.IncomingMessage;
    try {
      res = await send(url, target, { method, headers, body, signal, onConnect: opts.onConnect });
    } catch (err) {
      if (signal?.aborted) throw err;
      const code = (err as NodeJS.ErrnoException).code;
      throw new GuardedFetchError("network", `request to ${url.host} failed: ${code ? `${code} ` : ""}${(err as Error).message}`, {
        cause: err,
      });
    }
    const status = res.statusCode ?? 0;
    const location = res.headers.location;
    if (!REDIRECTS.has(status) || !location || maxRedirects === 0) {
      return { url: url.href, status, headers: res.headers, address: target.address, body: res };
    }
    res.destroy();
    if (hop >= maxRedirects) throw new GuardedFetchError("redirects", `stopped after ${maxRedirects} redirects (at ${url.href})`);
    let next: URL;
    try {
      next = new URL(location, url);
    } catch {
      throw new GuardedFetchError("invalid_url", `redirect from ${url.href} to an invalid URL: ${location.slice(0, 200)}`);
    }
    const crossOrigin = next.origin !== url.origin;
    url = parseTarget(next.href);
    if (status === 303 || ((status === 301 || status === 302) && method !== "GET" && method !== "HEAD")) {
      method = "GET";
      body = undefined;
      headers = withoutHeaders(headers, ["content-type", "content-length"]);
    }
    // Credentials meant for one origin are never forwarded to another (as browsers and undici do).
    if (crossOrigin) headers = withoutHeaders(headers, ["authorization", "cookie", "proxy-authorization"]);
  }
}

/** Only absolute http(s) URLs without credentials; the fragment is never sent. */
export function parseTarget(raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new GuardedFetchError("invalid_url", `not a valid absolute URL: ${raw.slice(0, 200)}`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new GuardedFetchError("invalid_url", `refused: only http:// and https:// URLs can be fetched, not ${url.protocol}`);
  }
  // Credentials in a URL would be sent to whoever the URL (or a redirect) points at.
  if (url.username || url.password) {
    throw new GuardedFetchError("invalid_url", "refused: URLs with credentials (user:password@host) are not fetched");
  }
  url.hash = "";
  return url;
}

/** Resolves the URL's host and checks every address; returns the one to connect to. */
async function resolveAndCheck(
  url: URL,
  allow: AllowList,
  resolve: Resolver,
  signal: AbortSignal | undefined,
  purpose: string | undefined,
): Promise<ResolvedAddress> {
  const host = bare(url.hostname);
  const literal = ipFamily(host);
  let addresses: ResolvedAddress[];
  if (literal) {
    addresses = [{ address: host, family: literal }];
  } else {
    try {
      addresses = await abortable(resolve(host), signal);
    } catch (err) {
      if (signal?.aborted) throw err;
      throw new GuardedFetchError(
        "unresolved",
        `could not resolve ${host}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
        { cause: err },
      );
    }
    if (addresses.length === 0) throw new GuardedFetchError("unresolved", `could not resolve ${host}: no addresses`);
  }
  // Allow-list entries may be scoped to a port (`127.0.0.1:4000`): the port this request connects to.
  const port = Number(url.port) || (url.protocol === "https:" ? 443 : 80);
  const hostAllowed = !literal && allow.allowsHost(host, port);
  // Every address must pass, not just the one we would use: a name that mixes public and private answers is
  // refused outright rather than trusted to keep resolving the same way.
  for (const a of addresses) {
    if (hostAllowed || allow.allowsAddress(a.address, port)) continue;
    const verdict = classifyAddress(a.address);
    if (verdict.blocked) {
      const via = literal ? "" : ` (${host} resolves to ${a.address})`;
      throw new GuardedFetchError(
        "refused",
        `refused: ${url.href} points at a ${verdict.reason} address${via}; ${purpose ?? "outbound requests"} only reach public addresses`,
      );
    }
  }
  return addresses[0]!;
}

function send(
  url: URL,
  target: ResolvedAddress,
  req: {
    method: string;
    headers: Record<string, string>;
    body: string | Buffer | undefined;
    signal: AbortSignal | undefined;
    onConnect: ConnectObserver | undefined;
  },
): Promise<http.IncomingMessage> {
  const secure = url.protocol === "https:";
  const host = bare(url.hostname);
  const port = Number(url.port || (secure ? 443 : 80));
  // The socket's only source of an address: the one that was checked.
  const lookup: LookupFunction = (_hostname, options, callback) => {
    if (options?.all) callback(null, [{ address: target.address, family: target.family }]);
    else callback(null, target.address, target.family);
  };
  const headers: Record<string, string> = { ...req.headers, host: url.host };
  if (req.body !== undefined) headers["content-length"] = String(Buffer.byteLength(req.body));
  return new Promise((resolve, reject) => {
    if (req.signal?.aborted) return reject(req.signal.reason);
    req.onConnect?.({ url: url.href, host, address: target.address, port });
    const r = (secure ? https : http).request(
      {
        method: req.method,
        host,
        port,
        path: `${url.pathname}${url.search}`,
        headers,
        agent: false, // no pooled socket from another host's check
        lookup,
        ...(req.signal ? { signal: req.signal } : {}),
        ...(secure && !ipFamily(host) ? { servername: host } : {}),
      },
      resolve,
    );
    r.on("error", reject);
    r.end(req.body);
  });
}

function withoutHeaders(headers: Record<string, string>, names: string[]): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).filter(([k]) => !names.includes(k.toLowerCase())));
}

function isAllowList(a: GuardedFetchOptions["allow"]): a is AllowList {
  return !!a && !Array.isArray(a) && typeof (a as AllowList).allowsHost === "function";
}

const bare = (hostname: string) => hostname.replace(/^\[(.*)\]$/, "$1");

function abortable<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}
