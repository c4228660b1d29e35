// Whether the database could not be reached while serving the current request — so that any route, whatever module
// the failed call was in and however that module reports it (most throw a plain Error naming what failed), answers a
// 503 `database_unavailable` (retry later) instead of a 500 (a bug). The one place that can tell an outage from a bug
// is the transport: the admin client's fetch and the direct rpc note here when PostgREST could not be reached
// (connection refused or cut: status 0) or answered that Postgres could not be (PostgREST's 502/503/504, PGRST000-003).
// withErrors (lib/http/errors.ts) opens a watch per request and reads it when a handler throws.
import { AsyncLocalStorage } from "node:async_hooks";

interface Watch {
  unreachable: boolean;
}

// On globalThis: Next may load this module once per bundle layer, and the watch opened by one copy must be the one
// another copy's client notes into (as lib/db/direct-rpc.ts's registry).
const KEY = Symbol.for("nightshift.db.reachability");
const watches: AsyncLocalStorage<Watch> = ((globalThis as { [KEY]?: AsyncLocalStorage<Watch> })[KEY] ??= new AsyncLocalStorage<Watch>());

/** Runs `fn` with a fresh watch: database calls made inside it (and in what it awaits) note outages into it. */
export function watchDatabase<T>(fn: () => Promise<T>): Promise<T> {
  return watches.run({ unreachable: false }, fn);
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
  if (w) w.unreachable = true;
}

/** A fetch for the admin client that notes outages: a request that got no answer, or an outage status. */
export function watchedFetch(fetchImpl: typeof fetch): typeof fetch {
  return ((input: Parameters<typeof fetch>[0], init?: RequestInit) =>
    fetchImpl(input, init).then(
      (res) => {
        if (isUnreachableStatus(res.status)) noteDatabaseUnreachable();
        return res;
      },
      (err: unknown) => {
        // A request the caller aborted says nothing about the database.
        if (!init?.signal?.aborted) noteDatabaseUnreachable();
        throw err;
      },
    )) as typeof fetch;
}
