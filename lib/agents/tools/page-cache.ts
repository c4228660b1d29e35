// web_fetch with the last good copy (graceful degradation, docs/failures.md): every page read with a 2xx is kept
// (size-capped, per URL); when a later fetch of the same URL fails on a network error or a 5xx — or its host's circuit
// breaker is open — the tool returns the cached copy (within NIGHTSHIFT_WEB_CACHE_TTL_HOURS), telling the model its
// date. Each host has a breaker (`web_fetch:<host>`): outages open it, and while it is open the host is not called.
// The cache and the breaker are helpers, never a new way to fail: if the database cannot be reached for them, the
// fetch goes on as it would without them.
import { acquireBreaker, dependency, recordBreaker } from "@/lib/breakers";
import type { AdminClient } from "@/lib/db/admin";
import type { WebFetchConfig } from "./config";
import { ToolError } from "./types";
import { webFetch, type WebFetchResult } from "./web-fetch";

const MAX_CACHED_BYTES = 256 * 1024;

export function webCacheTtlMs(): number {
  const hours = Number(process.env["NIGHTSHIFT_WEB_CACHE_TTL_HOURS"] ?? 168);
  return (Number.isFinite(hours) && hours >= 0 ? hours : 168) * 3_600_000;
}

export type CachedFetchResult = WebFetchResult | (WebFetchResult & { cached: true; cached_at: string; note: string });

let warned = false;
async function quietly<T>(what: string, fn: () => Promise<T>): Promise<T | undefined> {
  try {
    return await fn();
  } catch (err) {
    if (!warned) console.warn(`[web_fetch] ${what} skipped: ${(err as Error).message}`);
    warned = true;
    return undefined;
  }
}

/** A network failure or a timeout (an outage of the host), as opposed to a refusal of the URL itself. */
function isOutage(err: unknown): boolean {
  return err instanceof ToolError && /^(fetch of .* failed:|timed out after)/.test(err.message);
}

export async function webFetchWithLastGoodCopy(
  db: AdminClient,
  rawUrl: string,
  cfg: WebFetchConfig,
  opts: { signal?: AbortSignal; maxChars?: number } = {},
): Promise<CachedFetchResult> {
  let host: string;
  try {
    host = new URL(rawUrl).host;
  } catch {
    return webFetch(rawUrl, cfg, opts); // the tool's own validation answers
  }
  const dep = dependency.webFetch(host);
  const gate = await quietly("breaker check", () => acquireBreaker(db, dep));
  let failure: string;
  let live: WebFetchResult | undefined;
  if (gate?.role === "refused") {
    failure = `${host} is down (its circuit breaker is open until ${gate.retryAt})`;
  } else {
    try {
      live = await webFetch(rawUrl, cfg, opts);
    } catch (err) {
      if (!isOutage(err)) throw err;
      failure = (err as Error).message;
      await quietly("breaker record", () => recordBreaker(db, dep, { success: false, outage: true, error: `${host}: ${failure}`.slice(0, 300) }));
    }
    if (live && live.status < 500) {
      await quietly("breaker record", () => recordBreaker(db, dep, { success: true }));
      if (live.status >= 200 && live.status < 300) await quietly("page cache write", () => keep(db, live!));
      return live;
    }
    if (live) {
      failure = `${host} answered ${live.status}`;
      await quietly("breaker record", () => recordBreaker(db, dep, { success: false, outage: true, error: `${host} had a server error (${live!.status}).` }));
    }
  }
  const cached = await quietly("page cache read", () => lastGoodCopy(db, rawUrl));
  if (cached) {
    return {
      ...cached,
      cached: true,
      note: `The live fetch failed (${failure!}); this is Nightshift's last good copy of the page, fetched ${cached.cached_at}. It may be out of date.`,
    };
  }
  if (live) return live; // a 5xx with no cached copy: the model sees the error page, as before
  throw new ToolError(failure!);
}

async function keep(db: AdminClient, r: WebFetchResult): Promise<void> {
  let text = r.text;
  while (Buffer.byteLength(text, "utf8") > MAX_CACHED_BYTES) text = text.slice(0, Math.floor(text.length / 2));
  const { error } = await db.from("web_page_cache").upsert(
    { url: r.url, final_url: r.final_url, status: r.status, content_type: r.content_type, title: r.title ?? null, text, truncated: r.truncated === true || text.length < r.text.length, bytes: r.bytes, fetched_at: new Date().toISOString() },
    { onConflict: "url" },
  );
  if (error) throw new Error(error.message);
}

async function lastGoodCopy(db: AdminClient, url: string): Promise<(WebFetchResult & { cached_at: string }) | null> {
  const since = new Date(Date.now() - webCacheTtlMs()).toISOString();
  const { data, error } = await db.from("web_page_cache").select("*").eq("url", new URL(url).href).gte("fetched_at", since).maybeSingle();
  if (error) throw new Error(error.message);
  if (!data) return null;
  return {
    url: data.url,
    final_url: data.final_url,
    status: data.status,
    content_type: data.content_type,
    ...(data.title ? { title: data.title } : {}),
    text: data.text,
    ...(data.truncated ? { truncated: true as const } : {}),
    bytes: data.bytes,
    cached_at: data.fetched_at,
  };
}
