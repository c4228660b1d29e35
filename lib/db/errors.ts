// Telling "the database is unreachable" apart from every other database error, so a route answers 503 (retry
// later, nothing was recorded) only in that case and a 500 for real bugs.

/**
 * True when the call never reached Postgres: supabase-js could not connect (status 0), the gateway failed
 * (502/503/504), or PostgREST could not reach Postgres (PGRST000-PGRST003: connection and pool errors).
 */
export function isDatabaseUnreachable(res: { status?: number; error: { code?: string } | null }): boolean {
  if (!res.error) return false;
  if (res.status === 0 || res.status === 502 || res.status === 503 || res.status === 504) return true;
  return /^PGRST00[0-3]$/.test(res.error.code ?? "");
}

export { databaseUnavailable } from "@/lib/http/errors";
