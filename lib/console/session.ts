// Operator sessions: a stateless, signed cookie. The value is `<payload>.<signature>`, where the payload is
// base64url JSON `{ v, sid, iat, exp }` and the signature HMAC-SHA256 over the payload, checked in constant time.
//
// The signing key is derived from NIGHTSHIFT_SESSION_SECRET *and* a hash of the operator password, so changing
// either one signs every existing session out — the only revocation a stateless session has. Sign-out deletes the
// cookie in the browser; a copied cookie stays valid until it expires (NIGHTSHIFT_SESSION_TTL_HOURS).
//
// Plain node:crypto, no Next.js imports: proxy.ts, server actions and the tests share it.
import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { consoleConfig, ConsoleConfigError, type ConsoleConfig } from "./config";

export const SESSION_COOKIE = "ns_session";

export interface Session {
  /** Random id of this sign-in; the CSRF token is bound to it. */
  sid: string;
  issuedAt: number;
  expiresAt: number;
}

const sha256 = (s: string) => createHash("sha256").update(s, "utf8").digest();

/** A key for one purpose ("session", "csrf"), bound to the secret and the current password. */
export function derivedKey(config: Pick<ConsoleConfig, "sessionSecret" | "operatorPassword">, purpose: string): Buffer {
  return createHmac("sha256", config.sessionSecret)
    .update(`nightshift-console|${purpose}|`)
    .update(sha256(config.operatorPassword))
    .digest();
}

/** Constant-time password check: both sides are hashed first, so neither length nor content leaks by timing. */
export function passwordMatches(given: string, expected: string): boolean {
  return timingSafeEqual(sha256(given), sha256(expected));
}

export function newSession(config: ConsoleConfig, now = Date.now()): Session {
  return { sid: randomBytes(18).toString("base64url"), issuedAt: now, expiresAt: now + config.sessionTtlMs };
}

export function signSession(config: ConsoleConfig, session: Session): string {
  const payload = Buffer.from(
    JSON.stringify({ v: 1, sid: session.sid, iat: session.issuedAt, exp: session.expiresAt }),
    "utf8",
  ).toString("base64url");
  return `${payload}.${mac(config, payload)}`;
}

/** The session in a cookie value, or null when it is absent, malformed, forged, signed with another key, or expired. */
export function verifySession(config: ConsoleConfig, value: string | undefined | null, now = Date.now()): Session | null {
  if (!value || value.length > 1024) return null;
  const dot = value.indexOf(".");
  if (dot <= 0 || dot !== value.lastIndexOf(".")) return null;
  const payload = value.slice(0, dot);
  // Compare the encoded text, not decoded bytes: base64 decoding ignores a last character's spare bits, so two
  // spellings of one signature would otherwise both pass.
  const given = Buffer.from(value.slice(dot + 1), "utf8");
  const expected = Buffer.from(mac(config, payload), "utf8");
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(payload, "base64url").toString("utf8"));
  } catch {
    return null;
  }
  const p = parsed as { v?: unknown; sid?: unknown; iat?: unknown; exp?: unknown };
  if (p.v !== 1 || typeof p.sid !== "string" || typeof p.iat !== "number" || typeof p.exp !== "number") return null;
  if (p.exp <= now || p.iat > now + 60_000) return null;
  return { sid: p.sid, issuedAt: p.iat, expiresAt: p.exp };
}

function mac(config: ConsoleConfig, payload: string): string {
  return createHmac("sha256", derivedKey(config, "session")).update(payload, "utf8").digest("base64url");
}

/** Cookie attributes: HttpOnly, SameSite=Lax (a link from an e-mail or Slack still opens the console signed in),
 * Secure whenever the console is served over https, expiring with the session. */
export function sessionCookieOptions(session: Session, secure: boolean) {
  return {
    httpOnly: true,
    sameSite: "lax" as const,
    secure,
    path: "/",
    expires: new Date(session.expiresAt),
  };
}

/** The live session of a request's cookie value under the current configuration; null when the console is not
 * configured (every page then leads to /login, which names the missing variable). */
export function sessionOf(cookieValue: string | null | undefined, now = Date.now()): Session | null {
  let config: ConsoleConfig;
  try {
    config = consoleConfig();
  } catch (e) {
    if (e instanceof ConsoleConfigError) return null;
    throw e;
  }
  return verifySession(config, cookieValue, now);
}
