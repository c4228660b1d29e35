// The front door, run before every page, server action and API route (not Next's static assets):
//   - every path: a malformed percent-escape or a method Next has no handler slot for (TRACE, CONNECT, ...) is
//     answered here — as JSON under /api — because Next would otherwise answer a text/plain 500 or an HTML page;
//   - /api: nothing else (API-key auth happens in the routes); its answers get a CSP that allows nothing. The hottest
//     API routes (POST /api/tasks, GET /api/health: PROXY_FREE_API_PATHS) skip this file altogether — the matcher
//     below — and get the same contract elsewhere (see lib/http/security-headers.ts);
//   - pages: a fresh CSP nonce per request (lib/http/security-headers.ts);
//   - a page without a valid session cookie redirects to /login (pages and actions check again themselves);
//   - a POST (every console mutation is one) from another origin is refused with 403 before any action runs;
//   - a POST without a session, other than the sign-in itself, is refused with 401.
import { NextResponse, type NextRequest } from "next/server";
import { checkSameOrigin } from "@/lib/console/csrf";
import { SESSION_COOKIE, sessionOf } from "@/lib/console/session";
import { KNOWN_METHODS, KNOWN_METHODS_ALLOW } from "@/lib/http/methods";
import { API_CSP, commonSecurityHeaders, consoleCsp } from "@/lib/http/security-headers";

export function proxy(req: NextRequest): NextResponse {
  const rawPath = new URL(req.url).pathname;
  const path = req.nextUrl.pathname;
  const isApi = rawPath === "/api" || rawPath.startsWith("/api/");

  if (!KNOWN_METHODS.has(req.method)) {
    return refuse(isApi, 405, "method_not_allowed", `Method ${req.method.slice(0, 20)} is not allowed`, {
      Allow: KNOWN_METHODS_ALLOW,
    });
  }
  if (!decodable(rawPath)) return refuse(isApi, 400, "invalid_path", "The URL path holds a malformed percent-escape");

  if (isApi) {
    const res = NextResponse.next();
    res.headers.set("Content-Security-Policy", API_CSP);
    return res;
  }

  const isLogin = path === "/login" || path.startsWith("/login/");
  const mutation = req.method !== "GET" && req.method !== "HEAD" && req.method !== "OPTIONS";

  if (mutation) {
    const origin = checkSameOrigin(req.headers);
    if (!origin.ok) return refuse(false, 403, "csrf", `Forbidden: ${origin.reason}.`);
  }
  if (!isLogin && !sessionOf(req.cookies.get(SESSION_COOKIE)?.value)) {
    if (mutation) return refuse(false, 401, "unauthenticated", "Not signed in.");
    const login = req.nextUrl.clone();
    login.pathname = "/login";
    const back = path + req.nextUrl.search;
    login.search = back === "/" ? "" : `?next=${encodeURIComponent(back)}`;
    return withHeaders(NextResponse.redirect(login, 303));
  }
  return withNonce(req);
}

/** Passes the request on with a CSP nonce: Next puts it on the inline scripts it renders. */
function withNonce(req: NextRequest): NextResponse {
  const nonce = Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString("base64");
  const csp = consoleCsp(nonce);
  const headers = new Headers(req.headers);
  headers.set("x-nonce", nonce);
  headers.set("Content-Security-Policy", csp);
  const res = NextResponse.next({ request: { headers } });
  res.headers.set("Content-Security-Policy", csp);
  return res;
}

function decodable(path: string): boolean {
  try {
    decodeURIComponent(path);
    return true;
  } catch {
    return false;
  }
}

function refuse(json: boolean, status: number, code: string, message: string, extra: Record<string, string> = {}): NextResponse {
  const headers = { "cache-control": "no-store", ...extra };
  const res = json
    ? NextResponse.json({ error: { code, message } }, { status, headers: { ...headers, "Content-Security-Policy": API_CSP } })
    : new NextResponse(message, { status, headers: { ...headers, "content-type": "text/plain; charset=utf-8" } });
  return withHeaders(res);
}

/** Answers made here skip next.config.ts's headers(); give them the same ones. */
function withHeaders(res: NextResponse): NextResponse {
  for (const [k, v] of Object.entries(commonSecurityHeaders())) res.headers.set(k, v);
  return res;
}

export const config = {
  // Everything except Next's assets and the icons (which get their headers from next.config.ts), and the exact paths
  // of PROXY_FREE_API_PATHS (`$`: only those paths, not /api/tasks/<id> nor a malformed escape after them). Next reads
  // this statically: it must stay a literal.
  matcher: ["/((?!_next/static|_next/image|favicon.ico|robots.txt|api/tasks$|api/health$).*)"],
};
