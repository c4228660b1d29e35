// Request signing for cloud mode, matching the SDK (inngest 4.24 helpers/net.ts):
//   X-Inngest-Signature: t=<unix seconds>&s=<hex HMAC-SHA256(key, message + t)>
// key = the signing key without its "signkey-<env>-" prefix (used as text), message = the JCS-canonical JSON of
// a request body, or the raw text of a response body. Registration authenticates with
//   Authorization: Bearer signkey-<env>-<sha256(hex-decoded key)>.
// Timestamps use wall-clock time, never the engine's (possibly manual) clock: the SDK checks them against its own.
import canonicalize from "canonicalize";
import { createHash, createHmac, timingSafeEqual } from "node:crypto";

const PREFIX = /^signkey-[\w]+-/;
const MAX_SKEW_S = 5 * 60;

export function stripKeyPrefix(key: string): string {
  return key.replace(PREFIX, "");
}

export function hashSigningKey(key: string): string {
  const prefix = PREFIX.exec(key)?.[0] ?? "";
  return prefix + createHash("sha256").update(Buffer.from(stripKeyPrefix(key), "hex")).digest("hex");
}

function hmac(key: string, message: string, ts: string): string {
  return createHmac("sha256", stripKeyPrefix(key)).update(message).update(ts).digest("hex");
}

/** JCS text of a JSON value, as the SDK signs parsed request bodies. */
export function canonical(value: unknown): string {
  return canonicalize(value) ?? "";
}

/** Signature header for a request whose body is the JSON value `body` (already canonicalised text). */
export function signRequest(canonicalBody: string, key: string, nowS = Math.floor(Date.now() / 1000)): string {
  const ts = String(nowS);
  return `t=${ts}&s=${hmac(key, canonicalBody, ts)}`;
}

/** Constant-time string comparison (length leaks, content does not). */
export function safeEqual(a: string, b: string): boolean {
  const ab = Buffer.from(a);
  const bb = Buffer.from(b);
  if (ab.length !== bb.length) {
    // Compare anyway so the time does not depend on where a mismatch is.
    timingSafeEqual(ab, ab);
    return false;
  }
  return timingSafeEqual(ab, bb);
}

/** Verifies a signature header over `message` (raw text) with a ±5 minute window. */
export function verifySignature(header: string | null | undefined, message: string, key: string): boolean {
  if (!header) return false;
  const params = new URLSearchParams(header);
  const t = params.get("t");
  const s = params.get("s");
  if (!t || !s || !/^\d+$/.test(t)) return false;
  if (Math.abs(Date.now() / 1000 - Number(t)) > MAX_SKEW_S) return false;
  return safeEqual(hmac(key, message, t), s);
}

/** Checks an `Authorization: Bearer ...` header against the signing key (hashed, as the SDK sends it, or raw). */
export function verifyBearer(header: string | null | undefined, key: string): boolean {
  const token = /^Bearer\s+(.+)$/i.exec(header ?? "")?.[1]?.trim() ?? "";
  // Evaluate both comparisons so the timing does not reveal which form matched.
  const hashed = safeEqual(token, hashSigningKey(key));
  const raw = safeEqual(token, key);
  return hashed || raw;
}
