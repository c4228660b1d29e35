// Sign-in rate limit: at most 5 failed attempts per client IP in a sliding 15-minute window, plus a backstop of
// 50 failures per 15 minutes over all clients (X-Forwarded-For is only as trustworthy as the proxy in front:
// Vercel overwrites it, but a bare `next start` keeps whatever the client sent, so the backstop bounds guessing
// from rotating fake addresses).
//
// In memory, per server process: right for one `next start` or `npm run dev`. On serverless (several instances)
// each instance counts for itself, so the effective limit is per instance — a Postgres table would make it global.
export interface LoginLimiterOptions {
  perClient: number;
  global: number;
  windowMs: number;
}

export const DEFAULT_LIMITS: LoginLimiterOptions = { perClient: 5, global: 50, windowMs: 15 * 60_000 };

export type LimitVerdict = { allowed: true } | { allowed: false; retryAfterMs: number };

export class LoginLimiter {
  private readonly failures = new Map<string, number[]>();
  private all: number[] = [];

  constructor(private readonly opts: LoginLimiterOptions = DEFAULT_LIMITS) {}

  /** May this client try a password now? */
  check(client: string, now = Date.now()): LimitVerdict {
    const mine = this.prune(client, now);
    this.all = this.all.filter((t) => t > now - this.opts.windowMs);
    if (mine.length >= this.opts.perClient) return { allowed: false, retryAfterMs: mine[0]! + this.opts.windowMs - now };
    if (this.all.length >= this.opts.global) return { allowed: false, retryAfterMs: this.all[0]! + this.opts.windowMs - now };
    return { allowed: true };
  }

  fail(client: string, now = Date.now()): void {
    const mine = this.prune(client, now);
    mine.push(now);
    this.failures.set(client, mine);
    this.all.push(now);
    // Bound memory under a flood of distinct fake addresses.
    if (this.failures.size > 10_000) {
      for (const [k, v] of this.failures) if (!v.some((t) => t > now - this.opts.windowMs)) this.failures.delete(k);
    }
  }

  /** A successful sign-in clears the client's failures. */
  succeed(client: string): void {
    this.failures.delete(client);
  }

  reset(): void {
    this.failures.clear();
    this.all = [];
  }

  private prune(client: string, now: number): number[] {
    const kept = (this.failures.get(client) ?? []).filter((t) => t > now - this.opts.windowMs);
    if (kept.length) this.failures.set(client, kept);
    else this.failures.delete(client);
    return kept;
  }
}

// One limiter per server process. On globalThis so that Next's separate module graphs (server actions, pages)
// in the same process share it.
const KEY = Symbol.for("nightshift.console.loginLimiter");
export function loginLimiter(): LoginLimiter {
  const g = globalThis as unknown as Record<symbol, LoginLimiter | undefined>;
  return (g[KEY] ??= new LoginLimiter());
}

/** The client address for rate limiting: the proxy's X-Real-IP / first X-Forwarded-For entry, else "unknown". */
export function clientAddress(h: { get(name: string): string | null }): string {
  const real = h.get("x-real-ip")?.trim();
  if (real) return real.slice(0, 64);
  const fwd = h.get("x-forwarded-for")?.split(",")[0]?.trim();
  return fwd ? fwd.slice(0, 64) : "unknown";
}
