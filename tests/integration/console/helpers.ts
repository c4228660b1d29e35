// Shared set-up for the console's integration tests: a configured console, forged requests and sessions.
import { consoleConfig, type ConsoleConfig } from "@/lib/console/config";
import { CSRF_FIELD, csrfToken } from "@/lib/console/csrf";
import { newSession, signSession, type Session } from "@/lib/console/session";

export const PASSWORD = "integration operator password";
export const SECRET = "integration-session-secret-0123456789abcdefghij";
export const APP = "http://console.test:3000";

export function configureConsole(extra: Record<string, string> = {}): ConsoleConfig {
  Object.assign(process.env, { NIGHTSHIFT_OPERATOR_PASSWORD: PASSWORD, NIGHTSHIFT_SESSION_SECRET: SECRET, ...extra });
  return consoleConfig();
}

export function sessionCookie(config = consoleConfig(), now = Date.now()): { session: Session; value: string } {
  const session = newSession(config, now);
  return { session, value: signSession(config, session) };
}

/** Headers a same-origin browser form post would carry. */
export function sameOriginHeaders(extra: Record<string, string> = {}): Headers {
  return new Headers({ host: "console.test:3000", origin: APP, "sec-fetch-site": "same-origin", ...extra });
}

export function form(fields: Record<string, string>): FormData {
  const f = new FormData();
  for (const [k, v] of Object.entries(fields)) f.set(k, v);
  return f;
}

export function withToken(session: Session, fields: Record<string, string>): FormData {
  return form({ [CSRF_FIELD]: csrfToken(consoleConfig(), session), ...fields });
}
