// CSRF protection for every console mutation (all of them are POSTs — server actions):
//   1. the request must come from the console's own origin: `Origin` equal to the origin the request was sent
//      to, or — when a browser sends no Origin — `Sec-Fetch-Site: same-origin`; neither → refused;
//   2. the form must carry the session's CSRF token: HMAC(derived key, session id), in a hidden field, compared
//      in constant time. A page on another site can neither read it nor compute it.
// Either check alone stops a classic cross-site form post; together they also hold if one of them is bypassed
// (an old browser without Origin on same-site requests, a sibling subdomain, a cookie-tossing attacker).
import { createHmac, timingSafeEqual } from "node:crypto";
import type { ConsoleConfig } from "./config";
import { derivedKey, type Session } from "./session";

export const CSRF_FIELD = "csrf_token";

export function csrfToken(config: ConsoleConfig, session: Pick<Session, "sid">): string {
  return createHmac("sha256", derivedKey(config, "csrf")).update(session.sid, "utf8").digest("base64url");
}

export function csrfTokenValid(config: ConsoleConfig, session: Pick<Session, "sid">, given: unknown): boolean {
  if (typeof given !== "string" || given.length === 0 || given.length > 200) return false;
  const a = Buffer.from(given, "utf8");
  const b = Buffer.from(csrfToken(config, session), "utf8");
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Minimal view of request headers, so plain `Headers`, Next's `headers()` and tests all fit. */
export interface HeaderBag {
  get(name: string): string | null;
}

/** The origin the browser addressed: `X-Forwarded-Host`/`X-Forwarded-Proto` behind a proxy (Vercel), else Host. */
export function requestOrigin(h: HeaderBag, fallbackProto = "http"): string | null {
  const host = (h.get("x-forwarded-host") ?? h.get("host"))?.split(",")[0]?.trim();
  if (!host || !/^[A-Za-z0-9.-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$/.test(host)) return null;
  const proto = (h.get("x-forwarded-proto")?.split(",")[0]?.trim() || fallbackProto).toLowerCase();
  if (proto !== "http" && proto !== "https") return null;
  return `${proto}://${host}`.toLowerCase();
}

export type OriginVerdict = { ok: true } | { ok: false; reason: string };

/** Is this POST from the console's own pages? */
export function checkSameOrigin(h: HeaderBag): OriginVerdict {
  const origin = h.get("origin");
  const site = h.get("sec-fetch-site");
  if (site && site !== "same-origin") return { ok: false, reason: `cross-site request (Sec-Fetch-Site: ${site})` };
  if (origin && origin !== "null") {
    const expected = requestOrigin(h);
    if (!expected) return { ok: false, reason: "request without a valid Host" };
    // http vs https may differ behind a TLS-terminating proxy that sets no X-Forwarded-Proto: compare the host too.
    const o = origin.toLowerCase();
    if (o === expected || (stripProto(o) === stripProto(expected) && h.get("x-forwarded-proto") === null)) return { ok: true };
    return { ok: false, reason: `foreign Origin ${origin}` };
  }
  if (origin === "null") return { ok: false, reason: "opaque Origin" };
  if (site === "same-origin") return { ok: true };
  return { ok: false, reason: "neither Origin nor Sec-Fetch-Site: cannot tell where the request came from" };
}

const stripProto = (o: string) => o.replace(/^https?:\/\//, "");
