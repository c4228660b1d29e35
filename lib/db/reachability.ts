// Whether the database could not be reached while serving the current request — so that any route, whatever module
// the failed call was in and however that module reports it (most throw a plain Error naming what failed), answers a
// 503 `database_unavailable` (retry later) instead of a 500 (a bug). The one place that can tell an outage from a bug
// is the transport: the admin client's fetch and the direct rpc note here when PostgREST could not be reached
// (connection refused or cut: status 0) or answered that Postgres could not be (PostgREST's 502/503/504, PGRST000-003).
// withErrors (lib/http/errors.ts) opens a watch per request and reads it when a handler throws.
// The mark is cleared by a later answer: supabase-js retries a GET after a 502/503/504 or no answer, and once a call
// that STARTED after the last outage was noted gets a real answer, the database is back — an error thrown after that
// is judged on its own (a bug stays a 500). A call already in flight when the outage was noted clears nothing (its
// success says nothing about the call that failed beside it).
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

/** A fetch for the admin client that notes outages: a request that got no answer, or an outage status. */
export function watchedFetch(fetchImpl: typeof fetch): typeof fetch {
  return ((input: Parameters<typeof fetch>[0], init?: RequestInit) => {
    const startedAt = databaseCallStarted();
    return fetchImpl(input, init).then(
      (res) => {
        if (isUnreachableStatus(res.status)) noteDatabaseUnreachable();
        else noteDatabaseReached(startedAt);
        return res;
      },
      (err: unknown) => {
        // A request the caller aborted says nothing about the database.
        if (!init?.signal?.aborted) noteDatabaseUnreachable();
        throw err;
      },
    );
  }) as typeof fetch;
}
