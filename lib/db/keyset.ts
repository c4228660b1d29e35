// Keyset pagination shared by every list (tasks, dead letters, approvals): newest first on (timestamp desc, id desc).
// A cursor is base64url JSON `{ c: <timestamp as PostgREST prints it>, i: <uuid> }`. PostgREST can only say
// "older than (c, i)" with an `or=` filter, so the parts end up inside a filter string: they are therefore decoded
// strictly — canonical base64url, exactly those two keys, a timestamp and a uuid of a closed grammar (digits,
// `-:.TZ+`, hex) — and a cursor that is anything else is a 400. Nothing a client typed beyond that grammar can
// reach the filter (issue 11, finding 5).
import { ApiError } from "@/lib/http/errors";

const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export interface Keyset {
  c: string;
  i: string;
}

export function encodeKeyset(timestamp: string, id: string): string {
  return Buffer.from(JSON.stringify({ c: timestamp, i: id } satisfies Keyset)).toString("base64url");
}

/** The cursor's parts, or null when it is not exactly a cursor this API issued. */
export function parseKeyset(cursor: string): Keyset | null {
  if (!/^[A-Za-z0-9_-]{1,200}$/.test(cursor)) return null;
  let v: unknown;
  try {
    const raw = Buffer.from(cursor, "base64url");
    if (raw.toString("base64url") !== cursor) return null; // canonical encoding only
    v = JSON.parse(raw.toString("utf8"));
  } catch {
    return null;
  }
  if (!v || typeof v !== "object" || Array.isArray(v)) return null;
  const keys = Object.keys(v);
  if (keys.length !== 2 || !keys.includes("c") || !keys.includes("i")) return null;
  const { c, i } = v as { c: unknown; i: unknown };
  if (typeof c !== "string" || typeof i !== "string" || !TIMESTAMP.test(c) || !UUID.test(i)) return null;
  const [, month, day, hour, minute, second] = /^\d{4}-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})/.exec(c)!.map(Number);
  const valid = month! >= 1 && month! <= 12 && day! >= 1 && day! <= 31 && hour! < 24 && minute! < 60 && second! < 60;
  return valid && !Number.isNaN(Date.parse(c)) ? { c, i } : null;
}

export function badCursor(): ApiError {
  return new ApiError(400, "invalid_request", "Invalid query: cursor: not a cursor returned by this API", [
    { field: "cursor", message: "not a cursor returned by this API" },
  ]);
}

/** The cursor's parts; a 400 naming `cursor` when it is not one this API issued. */
export function decodeKeyset(cursor: string): Keyset {
  const k = parseKeyset(cursor);
  if (!k) throw badCursor();
  return k;
}

/**
 * The PostgREST `or=` filter for rows strictly after the cursor in (column desc, id desc) order. Send it with
 * `.lte(column, keysetBound(cursor))`: Postgres cannot start an index scan from an `or`, so without that plain bound
 * a page N deep reads (and throws away) every row of the N pages before it (bench/scale.ts).
 */
export function olderThan(column: "created_at" | "requested_at", cursor: string): string {
  const { c, i } = decodeKeyset(cursor);
  // Quoted: a timestamp holds "." and ":" which the or-syntax would otherwise split on.
  return `${column}.lt."${c}",and(${column}.eq."${c}",id.lt.${i})`;
}

/** The cursor's timestamp: the upper bound (inclusive) an index scan starts from; see olderThan. */
export function keysetBound(cursor: string): string {
  return decodeKeyset(cursor).c;
}
