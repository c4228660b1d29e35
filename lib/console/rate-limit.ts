// The sign-in limiter (issue 11, finding 2), with its state in Postgres (console_login_begin / _finish in
// 20261129111000_console_auth.sql) so every instance of the app counts together.
//
// - Per client address: after `perClient` attempts in a window without a success, that address is refused until
//   the window ends (OWASP's account-lockout advice, scoped to the address, not the account).
// - Never refused because of someone else: the shared bucket of clients whose address is unknown (no trusted
//   forwarding header) and the failures of all clients together only SLOW sign-in down — a growing delay before
//   the password is checked, capped — so the right password always gets in.
// - Which forwarding header names the client is configuration (NIGHTSHIFT_TRUSTED_PROXY): on Vercel (the
//   default) the platform overwrites X-Forwarded-For, so it is trusted there and only there; behind another proxy
//   name its header; anything a client can forge is never trusted.
import { z } from "zod";
import type { AdminClient } from "@/lib/db/admin";

export interface LoginLimiterOptions {
  /** Attempts per address per window before that address is refused. */
  perClient: number;
  windowMs: number;
  /** Failures over all clients in a window before everyone is slowed down. */
  globalSlowAfter: number;
  /** Longest delay added to one attempt. */
  maxDelayMs: number;
}

export const DEFAULT_LIMITS: LoginLimiterOptions = { perClient: 5, windowMs: 15 * 60_000, globalSlowAfter: 20, maxDelayMs: 5_000 };

export const UNKNOWN_CLIENT = "unknown";

export type LimitVerdict = { allowed: true; delayMs: number } | { allowed: false; retryAfterMs: number };

export interface LoginLimiter {
  /** Counts an attempt (before the password is checked) and says whether it may go on, and after what delay. */
  begin(client: string, now?: number): Promise<LimitVerdict>;
  /** Records the outcome: a success clears the address, a failure counts for it and globally. */
  finish(client: string, ok: boolean, now?: number): Promise<void>;
}

export function postgresLoginLimiter(db: AdminClient, opts: LoginLimiterOptions = DEFAULT_LIMITS): LoginLimiter {
  const windowSeconds = Math.ceil(opts.windowMs / 1000);
  return {
    async begin(client, now = Date.now()) {
      const { data, error } = await db.rpc("console_login_begin", {
        p_client: client,
        p_window_seconds: windowSeconds,
        p_now: new Date(now).toISOString(),
      });
      if (error) throw new Error(`login limiter failed: ${error.message}`);
      const row = (Array.isArray(data) ? data[0] : data) as { attempts: number; global_failures: number; retry_after_seconds: number };
      return verdict(client, row, opts);
    },
    async finish(client, ok, now = Date.now()) {
      const { error } = await db.rpc("console_login_finish", {
        p_client: client,
        p_ok: ok,
        p_window_seconds: windowSeconds,
        p_now: new Date(now).toISOString(),
      });
      if (error) throw new Error(`login limiter failed: ${error.message}`);
    },
  };
}

/** The decision for one attempt, from the counts the database returned. */
export function verdict(
  client: string,
  row: { attempts: number; global_failures: number; retry_after_seconds: number },
  opts: LoginLimiterOptions = DEFAULT_LIMITS,
): LimitVerdict {
  const over = row.attempts - opts.perClient;
  if (client !== UNKNOWN_CLIENT && over > 0) return { allowed: false, retryAfterMs: row.retry_after_seconds * 1000 };
  // Unknown clients share one bucket, so their excess attempts slow down instead of refusing.
  const bucketDelay = client === UNKNOWN_CLIENT && over > 0 ? 250 * 2 ** Math.min(over - 1, 10) : 0;
  const globalOver = row.global_failures - opts.globalSlowAfter;
  const globalDelay = globalOver > 0 ? 100 * 2 ** Math.min(globalOver / 5, 10) : 0;
  return { allowed: true, delayMs: Math.min(opts.maxDelayMs, Math.round(Math.max(bucketDelay, globalDelay))) };
}

export const TrustedProxy = z.enum(["vercel", "x-forwarded-for", "x-real-ip", "none"]).default("vercel");
export type TrustedProxy = z.infer<typeof TrustedProxy>;

/** NIGHTSHIFT_TRUSTED_PROXY, validated; an unknown value is a configuration error. */
export function trustedProxy(env: Record<string, string | undefined> = process.env): TrustedProxy {
  const parsed = TrustedProxy.safeParse(env.NIGHTSHIFT_TRUSTED_PROXY?.trim() || undefined);
  if (!parsed.success) throw new Error("NIGHTSHIFT_TRUSTED_PROXY must be vercel, x-forwarded-for, x-real-ip or none");
  return parsed.data;
}

/**
 * The client address for rate limiting, from the one header the configuration trusts:
 * - vercel: X-Forwarded-For's first entry, but only when running on Vercel (VERCEL=1), whose edge overwrites it;
 * - x-forwarded-for: the LAST entry (the one the trusted proxy appended; earlier ones are the client's word);
 * - x-real-ip: that header (a proxy that sets it, e.g. nginx `proxy_set_header X-Real-IP $remote_addr`);
 * - none: every client is "unknown" (one shared bucket that slows down, never refuses).
 */
export function clientAddress(
  h: { get(name: string): string | null },
  mode: TrustedProxy = trustedProxy(),
  env: Record<string, string | undefined> = process.env,
): string {
  let raw: string | undefined;
  if (mode === "vercel" && env.VERCEL === "1") raw = h.get("x-forwarded-for")?.split(",")[0];
  else if (mode === "x-forwarded-for") raw = h.get("x-forwarded-for")?.split(",").at(-1);
  else if (mode === "x-real-ip") raw = h.get("x-real-ip") ?? undefined;
  const address = raw?.trim().toLowerCase() ?? "";
  // Only something shaped like an address names a client (the key is stored; no free text).
  return /^[0-9a-f:.]{2,45}$/.test(address) ? `ip:${address}` : UNKNOWN_CLIENT;
}
