// What guards the Inngest serve route (/api/inngest) in production (issue 11, finding 4).
//
// - The serve origin is pinned: INNGEST_SERVE_ORIGIN, else on Vercel the production domain (production deploys)
//   or the deployment's own URL (previews). The SDK otherwise builds the URL it registers from the request's
//   Host header, which a client chooses.
// - In cloud mode (no INNGEST_DEV) only in-band syncs are served: Inngest sends them signed and the SDK verifies
//   the signature. An out-of-band `PUT` is unauthenticated by design (the SDK then calls Inngest with its own
//   signing key to register whatever URL it computed), so it is refused with a JSON 403. With INNGEST_DEV (the
//   local engine, the dev server, the tests) out-of-band syncs still work.
// - In dev mode nothing is signed, so the SDK runs any well-formed call: a `POST ?fnId=…` with a made-up event runs
//   that function's next step with the caller's data (run-task on a task id of the caller's choosing, spending its
//   agent's budget), and `PUT` re-syncs. `npm run dev` binds to 127.0.0.1, but any web page the developer opens can
//   still send such a request there (a cross-site "simple" POST needs no CORS preflight, and the SDK reads the body
//   whatever its content type), and a DNS-rebinding page can even read the answers. Neither the engine, the SDK's
//   dev server nor Inngest ever sends browser headers, so in dev mode a request carrying `Origin` or a
//   `Sec-Fetch-Site` other than `none` (a URL typed in the address bar) is refused with a JSON 403.
import { ApiError, errorJson } from "./errors";

type Env = Record<string, string | undefined>;

/** The origin the SDK registers, or undefined to let it derive one (dev mode only). */
export function inngestServeOrigin(env: Env = process.env): string | undefined {
  const explicit = env.INNGEST_SERVE_ORIGIN?.trim();
  if (explicit) return explicit.replace(/\/+$/, "");
  const host = env.VERCEL_ENV === "production" && env.VERCEL_PROJECT_PRODUCTION_URL ? env.VERCEL_PROJECT_PRODUCTION_URL : env.VERCEL_URL;
  return host ? `https://${host.trim().replace(/^https?:\/\//, "").replace(/\/+$/, "")}` : undefined;
}

/** Cloud mode as the SDK decides it: INNGEST_DEV unset or falsy. */
export function inngestCloudMode(env: Env = process.env): boolean {
  const dev = env.INNGEST_DEV?.trim().toLowerCase();
  return !dev || dev === "0" || dev === "false";
}

/** Wraps the SDK's PUT handler: in cloud mode only signed in-band syncs reach it. */
export function requireInBandSync<R extends Request, A extends unknown[]>(
  put: (req: R, ...rest: A) => Promise<Response>,
  env: Env = process.env,
): (req: R, ...rest: A) => Promise<Response> {
  return async (req, ...rest) => {
    if (inngestCloudMode(env) && req.headers.get("x-inngest-sync-kind")?.toLowerCase() !== "in_band") {
      return errorJson(
        new ApiError(
          403,
          "forbidden",
          "Out-of-band sync is disabled in production; sync from Inngest (in-band, signed): the Vercel integration or the dashboard's Sync button",
        ),
      );
    }
    try {
      const res = await put(req, ...rest);
      // The SDK refuses a sync it cannot use (a body without `url`, a bad signature) in its own shape, with its
      // validator's issue list as the message: answer in the API's shape, saying only what went wrong.
      if (res.status >= 400 && res.status < 500) {
        return errorJson(new ApiError(res.status, res.status === 401 ? "unauthorized" : "invalid_request", "The sync request was refused"));
      }
      return res;
    } catch {
      // The SDK throws (Next would answer an empty 500) when a sync's body is not JSON: a client error.
      return errorJson(new ApiError(400, "invalid_request", "The sync request could not be read"));
    }
  };
}

/** Did a web page (not the engine, not a typed URL) send this request? Every browser marks its requests so. */
export function sentByAWebPage(headers: { get(name: string): string | null }): boolean {
  const site = headers.get("sec-fetch-site");
  return headers.get("origin") !== null || (site !== null && site.toLowerCase() !== "none");
}

/** Wraps one of the SDK's handlers: in dev mode (unsigned), requests a web page sent never reach it. */
export function refuseWebPagesInDevMode<R extends Request, A extends unknown[]>(
  handler: (req: R, ...rest: A) => Promise<Response>,
  env: Env = process.env,
): (req: R, ...rest: A) => Promise<Response> {
  return async (req, ...rest) => {
    if (!inngestCloudMode(env) && sentByAWebPage(req.headers)) {
      return errorJson(
        new ApiError(403, "forbidden", "The Inngest serve route does not accept requests from web pages in dev mode (they are unsigned)"),
      );
    }
    return handler(req, ...rest);
  };
}
