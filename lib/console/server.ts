// The console's glue to the Next.js request: the session from the cookie, the redirect to /login, and the request
// context the operations need. Pages and server actions import this; the operations stay framework-free.
import "server-only";
import { cookies, headers } from "next/headers";
import { redirect } from "next/navigation";
import { db } from "@/lib/db/server";
import { consoleConfig } from "./config";
import { csrfToken } from "./csrf";
import type { RequestContext } from "./operations";
import { SESSION_COOKIE, sessionOf, type Session } from "./session";
import { sessionIsLive } from "./session-store";

/** The session of this request's cookie: signed by us, unexpired, and still live in console_sessions. */
export async function currentSession(): Promise<Session | null> {
  const session = sessionOf((await cookies()).get(SESSION_COOKIE)?.value);
  return session && (await sessionIsLive(db(), session)) ? session : null;
}

/** Every console page calls this first; without a live session it ends the render with a redirect to /login. */
export async function requireSession(): Promise<Session> {
  const session = await currentSession();
  if (!session) redirect("/login");
  return session;
}

/** The CSRF token for the forms of a page rendered for this session. */
export function formToken(session: Session): string {
  return csrfToken(consoleConfig(), session);
}

/** The request as the operations see it. A cookie whose session was ended server side is passed on as none. */
export async function requestContext(form: FormData): Promise<RequestContext> {
  const cookie = (await cookies()).get(SESSION_COOKIE)?.value ?? null;
  const session = sessionOf(cookie);
  const live = session !== null && (await sessionIsLive(db(), session));
  return { headers: await headers(), sessionCookie: live ? cookie : null, form };
}
