// The console's front door, run before every page and server action (never for /api, which keeps API-key auth,
// nor for Next's static assets):
//   - a page without a valid session cookie redirects to /login (pages and actions check again themselves);
//   - a POST (every console mutation is one) from another origin is refused with 403 before any action runs;
//   - a POST without a session, other than the sign-in itself, is refused with 401.
import { NextResponse, type NextRequest } from "next/server";
import { checkSameOrigin } from "@/lib/console/csrf";
import { SESSION_COOKIE, sessionOf } from "@/lib/console/session";

export function proxy(req: NextRequest): NextResponse {
  const path = req.nextUrl.pathname;
  const isLogin = path === "/login" || path.startsWith("/login/");
  const mutation = req.method !== "GET" && req.method !== "HEAD" && req.method !== "OPTIONS";

  if (mutation) {
    const origin = checkSameOrigin(req.headers);
    if (!origin.ok) return refuse(403, `Forbidden: ${origin.reason}.`);
  }
  if (isLogin) return NextResponse.next();

  if (!sessionOf(req.cookies.get(SESSION_COOKIE)?.value)) {
    if (mutation) return refuse(401, "Not signed in.");
    const login = req.nextUrl.clone();
    login.pathname = "/login";
    const back = path + req.nextUrl.search;
    login.search = back === "/" ? "" : `?next=${encodeURIComponent(back)}`;
    return NextResponse.redirect(login, 303);
  }
  return NextResponse.next();
}

function refuse(status: number, message: string): NextResponse {
  return new NextResponse(message, { status, headers: { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" } });
}

export const config = {
  // Everything except the HTTP API, Next's assets and the icons.
  matcher: ["/((?!api/|_next/static|_next/image|favicon.ico|robots.txt).*)"],
};
