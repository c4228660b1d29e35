// Sign-in on the real database (issue 11, findings 2 and 9): the limiter's state lives in Postgres, so every
// instance counts together; one address's failures lock only that address; clients without a trusted address
// and everyone's failures together only slow sign-in down, so the right password always gets in; and a session
// ends server side. The "right password still works" and "hammered concurrently" cases failed on the previous,
// per-process limiter with its shared global bucket.
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { signIn, type SignInDeps } from "@/lib/console/operations";
import { clientAddress, DEFAULT_LIMITS, postgresLoginLimiter, UNKNOWN_CLIENT, verdict } from "@/lib/console/rate-limit";
import { endSession, sessionIsLive } from "@/lib/console/session-store";
import { verifySession } from "@/lib/console/session";
import { consoleConfig } from "@/lib/console/config";
import { createTestSupabase, type TestSupabase } from "../../support/supabase";
import { sql } from "../db/sql";
import { configureConsole, form, PASSWORD, sameOriginHeaders } from "./helpers";

let sb: TestSupabase;
beforeAll(async () => {
  configureConsole();
  sb = await createTestSupabase();
}, 60_000);
afterAll(async () => {
  await sb?.stop();
});

// Addresses are trusted from X-Real-IP here (NIGHTSHIFT_TRUSTED_PROXY=x-real-ip), as behind nginx.
process.env.NIGHTSHIFT_TRUSTED_PROXY = "x-real-ip";
let ipSeq = 0;
const freshIp = () => `198.51.100.${++ipSeq}`;

function deps(delays: number[] = []): SignInDeps {
  return { db: sb.admin, sleep: async (ms) => void delays.push(ms) };
}
const attempt = (password: string, ip: string | null, d = deps(), extra: Record<string, string> = {}) =>
  signIn({ headers: sameOriginHeaders({ ...(ip ? { "x-real-ip": ip } : {}), ...extra }), form: form({ password }) }, d);

describe("sign-in", () => {
  test("the right password yields a valid, recorded session; a wrong one does not", async () => {
    const ip = freshIp();
    expect(await attempt("not the password", ip)).toMatchObject({ ok: false, code: "invalid", error: "Wrong password." });
    const right = await attempt(PASSWORD, ip);
    expect(right.ok).toBe(true);
    if (!right.ok) return;
    expect(verifySession(consoleConfig(), right.cookieValue)).toEqual(right.session);
    expect(await sessionIsLive(sb.admin, right.session)).toBe(true);
  });

  test("a sign-in posted from another site is refused before any counting; https gets a Secure cookie", async () => {
    const cross = await signIn(
      { headers: new Headers({ host: "console.test:3000", origin: "https://evil.example" }), form: form({ password: PASSWORD }) },
      deps(),
    );
    expect(cross).toMatchObject({ ok: false, code: "csrf" });
    const secure = await signIn(
      {
        headers: sameOriginHeaders({ "x-forwarded-proto": "https", origin: "https://console.test:3000", "x-real-ip": freshIp() }),
        form: form({ password: PASSWORD, next: "/.//evil.example/x" }),
      },
      deps(),
    );
    expect(secure).toMatchObject({ ok: true, secure: true, next: "/" });
  });

  test("after 5 attempts from one address even the right password is refused there; other addresses are not affected", async () => {
    const ip = freshIp();
    for (let i = 0; i < 5; i++) expect((await attempt("wrong", ip)).ok).toBe(false);
    const locked = await attempt(PASSWORD, ip);
    expect(locked).toMatchObject({ ok: false, code: "rate_limited" });
    if (!locked.ok) expect(locked.error).toMatch(/Try again in 1[0-5] minutes/);
    expect((await attempt(PASSWORD, freshIp())).ok).toBe(true);
  });

  test("a success clears the address's attempts", async () => {
    const ip = freshIp();
    for (let i = 0; i < 4; i++) await attempt("wrong", ip);
    expect((await attempt(PASSWORD, ip)).ok).toBe(true);
    for (let i = 0; i < 4; i++) await attempt("wrong", ip);
    expect((await attempt(PASSWORD, ip)).ok).toBe(true);
  });

  test("clients without a trusted address are slowed down, never locked out: the right password gets in after 60 failures", async () => {
    const delays: number[] = [];
    for (let i = 0; i < 60; i++) expect(await attempt("wrong", null, deps(delays))).toMatchObject({ code: "invalid" });
    const forged = await attempt(PASSWORD, null, deps(delays), { "x-forwarded-for": "203.0.113.9" });
    expect(forged.ok).toBe(true);
    expect(delays.length).toBeGreaterThan(40);
    expect(Math.max(...delays)).toBe(DEFAULT_LIMITS.maxDelayMs);
    expect(delays.at(-1)).toBe(DEFAULT_LIMITS.maxDelayMs);
  });

  test("a flood of failures from many addresses slows everyone down and locks no one else out", async () => {
    const delays: number[] = [];
    // The unknown bucket was cleared by the success above; the global failure count is still high.
    const ip = freshIp();
    const res = await attempt(PASSWORD, ip, deps(delays));
    expect(res.ok).toBe(true);
    expect(delays[0]).toBeGreaterThan(0);
  });

  test("concurrent guesses from one address cannot slip past the limit: 30 at once, at most 5 get a password check", async () => {
    const ip = freshIp();
    const results = await Promise.all(Array.from({ length: 30 }, () => attempt("wrong", ip)));
    const codes = results.map((r) => (r.ok ? "ok" : r.code));
    expect(codes.filter((c) => c === "invalid").length).toBe(5);
    expect(codes.filter((c) => c === "rate_limited").length).toBe(25);
  });
});

describe("the limiter's SQL", () => {
  test("console_login_begin counts exactly under 50 concurrent calls; console_login_finish counts failures globally", async () => {
    const limiter = postgresLoginLimiter(sb.admin);
    const client = `ip:${freshIp()}`;
    const [before] = await sql<{ failures: number }>(sb.databaseUrl, "select coalesce((select failures from public.console_login_limits where client = '*'), 0) as failures");
    await Promise.all(Array.from({ length: 50 }, () => limiter.begin(client)));
    await Promise.all(Array.from({ length: 50 }, () => limiter.finish(client, false)));
    const rows = await sql<{ client: string; attempts: number; failures: number }>(
      sb.databaseUrl,
      "select client, attempts, failures from public.console_login_limits where client in ($1, '*') order by client",
      [client],
    );
    expect(rows).toEqual([
      { client: "*", attempts: 0, failures: before!.failures + 50 },
      { client, attempts: 50, failures: 50 },
    ]);
    await limiter.finish(client, true);
    expect(await sql(sb.databaseUrl, "select 1 from public.console_login_limits where client = $1", [client])).toEqual([]);
  });

  test("a window that ended starts over", async () => {
    const limiter = postgresLoginLimiter(sb.admin);
    const client = `ip:${freshIp()}`;
    const t0 = Date.now();
    for (let i = 0; i < 6; i++) await limiter.begin(client, t0);
    expect(await limiter.begin(client, t0)).toMatchObject({ allowed: false });
    expect(await limiter.begin(client, t0 + DEFAULT_LIMITS.windowMs + 1000)).toEqual({ allowed: true, delayMs: expect.any(Number) });
  });
});

describe("client address and verdict", () => {
  const h = (o: Record<string, string>) => new Headers(o);
  test("only the configured header names the client", () => {
    const hdrs = h({ "x-forwarded-for": "203.0.113.1, 10.0.0.2", "x-real-ip": "198.51.100.7" });
    expect(clientAddress(hdrs, "vercel", { VERCEL: "1" })).toBe("ip:203.0.113.1");
    expect(clientAddress(hdrs, "vercel", {})).toBe(UNKNOWN_CLIENT); // not on Vercel: the header is the client's word
    expect(clientAddress(hdrs, "x-forwarded-for", {})).toBe("ip:10.0.0.2"); // the entry the proxy appended
    expect(clientAddress(hdrs, "x-real-ip", {})).toBe("ip:198.51.100.7");
    expect(clientAddress(hdrs, "none", { VERCEL: "1" })).toBe(UNKNOWN_CLIENT);
    expect(clientAddress(h({ "x-real-ip": "'; drop table" }), "x-real-ip", {})).toBe(UNKNOWN_CLIENT);
  });

  test("the unknown bucket is never refused", () => {
    expect(verdict(UNKNOWN_CLIENT, { attempts: 10_000, global_failures: 10_000, retry_after_seconds: 900 })).toEqual({
      allowed: true,
      delayMs: DEFAULT_LIMITS.maxDelayMs,
    });
    expect(verdict("ip:1.2.3.4", { attempts: 6, global_failures: 0, retry_after_seconds: 60 })).toEqual({ allowed: false, retryAfterMs: 60_000 });
  });
});

describe("sessions end server side", () => {
  test("after sign-out the same cookie value is no longer a live session", async () => {
    const right = await attempt(PASSWORD, freshIp());
    if (!right.ok) throw new Error("sign-in failed");
    expect(await sessionIsLive(sb.admin, right.session)).toBe(true);
    await endSession(sb.admin, right.session.sid);
    // The signature still verifies — only the server-side record says it has ended.
    expect(verifySession(consoleConfig(), right.cookieValue)).not.toBeNull();
    expect(await sessionIsLive(sb.admin, right.session)).toBe(false);
  });
});
