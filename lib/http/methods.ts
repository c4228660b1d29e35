// JSON 405s. Next answers a method a route file does not export with an empty 405; the API promises JSON errors
// for every response, so each route exports the methods it does not serve from here. (TRACE, PROPFIND and other
// methods Next has no handler slot for are answered before Next: lib/http/forbidden-methods.ts, proxy.ts.)
import { ApiError, errorJson } from "./errors";

const ROUTE_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"] as const;
type RouteMethod = (typeof ROUTE_METHODS)[number];

/** The methods Next's route handlers and pages can answer; anything else never reaches a handler. */
export const KNOWN_METHODS: ReadonlySet<string> = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);
/** The Allow header of a 405 for a method outside KNOWN_METHODS. */
export const KNOWN_METHODS_ALLOW = [...KNOWN_METHODS].join(", ");

export function methodNotAllowed(allowed: readonly RouteMethod[]): Record<RouteMethod, () => Response> {
  const allow = [...new Set([...allowed, ...(allowed.includes("GET") ? ["HEAD"] : []), "OPTIONS"])].sort().join(", ");
  const answer = () =>
    errorJson(new ApiError(405, "method_not_allowed", `Method not allowed; this endpoint accepts ${allow}`, undefined, { Allow: allow }));
  return Object.fromEntries(ROUTE_METHODS.map((m) => [m, answer])) as Record<RouteMethod, () => Response>;
}
