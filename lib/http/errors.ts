// Every API error leaves as JSON `{ error: { code, message, details? } }` with the right status — never a
// stack trace or an HTML page.
import { databaseWasUnreachable, watchDatabase } from "@/lib/db/reachability";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
    readonly headers?: Record<string, string>,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

export function errorJson(err: ApiError): Response {
  const body: { error: { code: string; message: string; details?: unknown } } = {
    error: { code: err.code, message: err.message },
  };
  if (err.details !== undefined) body.error.details = err.details;
  return Response.json(body, { status: err.status, headers: err.headers });
}

/**
 * Wraps a route handler: ApiErrors become their JSON answer, anything else a 500 whose details stay in the
 * server log (with a correlation id the client can quote).
 */
export function withErrors<A extends unknown[]>(
  handler: (...args: A) => Promise<Response>,
): (...args: A) => Promise<Response> {
  return (...args: A) =>
    watchDatabase(async () => {
      try {
        return await handler(...args);
      } catch (err) {
        if (err instanceof ApiError) return errorJson(err);
        // The client went away mid-request (e.g. while its body was read): nobody is listening for an answer.
        const req = args[0];
        if (req instanceof Request && req.signal.aborted) {
          return errorJson(new ApiError(499, "client_closed_request", "The client closed the request"));
        }
        // A database call of this request could not reach Postgres: an outage, not a bug — 503, retry later.
        if (databaseWasUnreachable()) {
          console.error(`[api] database unreachable: ${err instanceof Error ? err.message : String(err)}`);
          return errorJson(databaseUnavailable());
        }
        const ref = crypto.randomUUID();
        console.error(`[api] unhandled error ref=${ref}:`, err instanceof Error ? err.message : err);
        return errorJson(new ApiError(500, "internal_error", `Internal error (ref ${ref})`));
      }
    });
}

/** 503: the database could not be reached (nothing was recorded by the failed call; retry later). */
export function databaseUnavailable(): ApiError {
  return new ApiError(503, "database_unavailable", "The database is unreachable; retry shortly (with the same Idempotency-Key, if any)", undefined, {
    "Retry-After": "5",
  });
}
