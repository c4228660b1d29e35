// Whether the database could not be reached while serving the current request — so that any route, whatever module
// the failed call was in and however that module reports it (most throw a plain Error naming what failed), answers a
// 503 `database_unavailable` (retry later) instead of a 500 (a bug). The one place that can tell an outage from a bug
// is the transport: the admin client's fetch and the direct rpc note here when PostgREST could not be reached
// (connection refused or cut: status 0) or answered that Postgres could not be (PostgREST's 502/503/504, PGRST000-003).
// withErrors (lib/http/errors.ts) opens a watch per request and reads it when a handler throws.
// The mark is cleared by a later answer: a read is repeated after a 503 or no answer (watchedFetch), and once a call
// that STARTED after the last outage was noted gets a real answer, the database is back — an error thrown after that
// is judged on its own (a bug stays a 500). A call already in flight when the outage was noted clears nothing (its
// success says nothing about the call that failed beside it).
// How often a read is repeated is decided here too (retryDelayMs): a request gives an outage one quick second look
// and then answers its 503 at once; outside a request (Inngest steps) supabase-js's 1 + 2 + 4 s policy is kept.
import { AsyncLocalStorage } from "node:async_hooks";

interface Watch {
  unreachable: boolean;
  /** How many outages were noted: a call remembers it when it starts, and clears the mark on success only if no
   * outage was noted since. */
  outages: number;
}

// On globalThis: Next may load this module once per bundle layer, and the watch opened by one copy must be the one
// another copy's client notes into (as lib/db/direct-rpc.ts's registry).
const KEY = Symbol.for("nightshift.db.reachability");
const watches: AsyncLocalStorage<Watch> = ((globalThis as { [KEY]?: AsyncLocalStorage<Watch> })[KEY] ??= new AsyncLocalStorage<Watch>());

/** Runs `fn` with a fresh watch: database calls made inside it (and in what it awaits) note outages into it. */
export function watchDatabase<T>(fn: () => Promise<T>): Promise<T> {
  return watches.run({ unreachable: false, outages: 0 }, fn);
}

/** Did a database call of the current watch fail to reach Postgres? */
export function databaseWasUnreachable(): boolean {
  return watches.getStore()?.unreachable === true;
}

/** PostgREST's statuses for "Postgres cannot be reached" (and a gateway's in front of it). */
export function isUnreachableStatus(status: number): boolean {
  return status === 0 || status === 502 || status === 503 || status === 504;
}

/** Notes an outage in the current watch (no-op outside one, e.g. in an Inngest step). */
export function noteDatabaseUnreachable(): void {
  const w = watches.getStore();
  if (!w) return;
  w.unreachable = true;
  w.outages += 1;
}

/** Call when a database call starts; pass what it returns to noteDatabaseReached when it gets a real answer. */
export function databaseCallStarted(): number | undefined {
  return watches.getStore()?.outages;
}

/** A call that started at `startedAt` (databaseCallStarted) got a real answer: if no outage was noted since it
 * started, the database is reachable again and the watch's mark is cleared. */
export function noteDatabaseReached(startedAt: number | undefined): void {
  const w = watches.getStore();
  if (w && startedAt !== undefined && w.outages === startedAt) w.unreachable = false;
}

/** Reads, the only calls repeated on their own (as supabase-js: postgrest-js's fetchWithRetry). */
const READ_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);
/** supabase-js's retryable answers: 503 (PostgREST cannot reach Postgres, or its schema cache is loading) and 520. */
const RETRY_STATUSES = new Set([503, 520]);
/** Outside a request, supabase-js's own policy: 3 retries, 1 + 2 + 4 s apart unless Retry-After says otherwise. */
const MAX_RETRIES = 3;
const backoffMs = (retry: number) => Math.min(1000 * 2 ** retry, 30_000);
/** Inside a request, the one second look a read gets, this long after the first failure at most. */
export const IN_REQUEST_RETRY_MS = 250;

/** How long to wait before retry number `retry` (0-based) of a read, or null for no retry. Exported for tests. */
export function retryDelayMs(retry: number, retryAfter: string | null, inRequest: boolean, unreachableBefore: boolean): number | null {
  const hinted = retryAfter !== null ? Math.max(0, Number.parseInt(retryAfter, 10) || 0) * 1000 : null;
  if (!inRequest) return retry < MAX_RETRIES ? (hinted ?? backoffMs(retry)) : null;
  // A request being served (a watch is open): the client is waiting, and the answer to an outage is a 503 with
  // Retry-After — the client's retry is what finds the database back. So the first read of the request that finds
  // it unreachable gets one quick second look (a PostgREST restarting or reloading its schema cache, a socket cut
  // between two calls), and nothing more: a read that starts after this request already saw the database
  // unreachable, or whose second look failed too, fails at once. Before, supabase-js waited 1 + 2 + 4 s between
  // attempts, so every read of an outage answered its 503 after ~7 s, and a route with three reads after ~21 s.
  if (retry > 0 || unreachableBefore) return null;
  return Math.min(hinted ?? IN_REQUEST_RETRY_MS, IN_REQUEST_RETRY_MS);
}

function pause(ms: number, signal: AbortSignal | null | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done);
  });
}

/**
 * A fetch for the admin client that notes outages (a request that got no answer, or an outage status) and repeats
 * reads itself, by the rule of retryDelayMs: the admin client turns supabase-js's own retries off (they would wait
 * 1 + 2 + 4 s whoever is waiting), and outside a request this keeps exactly their policy.
 */
export function watchedFetch(fetchImpl: typeof fetch): typeof fetch {
  return (async (input: Parameters<typeof fetch>[0], init?: RequestInit) => {
    const w = watches.getStore();
    // The database already seen unreachable by this request (and not seen back since) when this call started.
    const unreachableBefore = w?.unreachable === true;
    const read = READ_METHODS.has((init?.method ?? "GET").toUpperCase());
    for (let retry = 0; ; retry++) {
      const startedAt = databaseCallStarted();
      let res: Response;
      try {
        res = await fetchImpl(input, init);
      } catch (err) {
        // A request the caller aborted says nothing about the database.
        if (init?.signal?.aborted) throw err;
        noteDatabaseUnreachable();
        const wait = read ? retryDelayMs(retry, null, w !== undefined, unreachableBefore) : null;
        if (wait === null) throw err;
        await pause(wait, init?.signal);
        init?.signal?.throwIfAborted();
        continue;
      }
      if (isUnreachableStatus(res.status)) noteDatabaseUnreachable();
      else noteDatabaseReached(startedAt);
      const wait = read && RETRY_STATUSES.has(res.status) ? retryDelayMs(retry, res.headers.get("retry-after"), w !== undefined, unreachableBefore) : null;
      if (wait === null) return res;
      await res.text().catch(() => "");
      await pause(wait, init?.signal);
      init?.signal?.throwIfAborted();
    }
  }) as typeof fetch;
}
