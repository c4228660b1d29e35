// Strict validation of the list cursor (issue 11, finding 5). lib/tasks/service.ts encodes a cursor as base64url
// JSON `{ c: <created_at as PostgREST prints it>, i: <task uuid> }` and places its parts in a PostgREST filter.
// Anything else — a lenient `Date.parse` date, extra keys, quotes, commas or parentheses — is refused here, at the
// route, before it gets near a filter: only the exact shape the API itself produced passes.
import { ApiError } from "./errors";

const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function assertListCursor(cursor: string): void {
  if (!isListCursor(cursor)) {
    throw new ApiError(400, "invalid_request", "Invalid query: cursor: not a cursor returned by this API", [
      { field: "cursor", message: "not a cursor returned by this API" },
    ]);
  }
}

export function isListCursor(cursor: string): boolean {
  if (!/^[A-Za-z0-9_-]{1,200}$/.test(cursor)) return false;
  let v: unknown;
  try {
    const raw = Buffer.from(cursor, "base64url");
    // Canonical encoding only: the same bytes must encode back to the same text.
    if (raw.toString("base64url") !== cursor) return false;
    v = JSON.parse(raw.toString("utf8"));
  } catch {
    return false;
  }
  if (!v || typeof v !== "object" || Array.isArray(v)) return false;
  const keys = Object.keys(v);
  if (keys.length !== 2 || !keys.includes("c") || !keys.includes("i")) return false;
  const { c, i } = v as { c: unknown; i: unknown };
  if (typeof c !== "string" || typeof i !== "string" || !TIMESTAMP.test(c) || !UUID.test(i)) return false;
  const [, month, day, hour, minute, second] = /^\d{4}-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})/.exec(c)!.map(Number);
  return month! >= 1 && month! <= 12 && day! >= 1 && day! <= 31 && hour! < 24 && minute! < 60 && second! < 60 && !Number.isNaN(Date.parse(c));
}
