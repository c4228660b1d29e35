// The console's glue to the Next.js request: the session from the cookie, the redirect to /login, and the request
// context the operations need. Pages and server actions import this; the operations stay framework-free.
import "server-only";
import { cookies, headers } from "next/headers";
import { redirect } from "next/navigation";
import { consoleConfig } from "./config";
import { csrfToken } from "./csrf";
import type { RequestContext } from "./operations";
import { SESSION_COOKIE, sessionOf, type Session } from "./session";

export async function currentSession(): Promise<Session | null> {
  return sessionOf((await cookies()).get(SESSION_COOKIE)?.value);
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

export async function requestContext(form: FormData): Promise<RequestContext> {
  return {
    headers: await headers(),
    sessionCookie: (await cookies()).get(SESSION_COOKIE)?.value ?? null,
    form,
  };
}
