// Sign-in: wrong passwords are refused, and 5 failures in 15 minutes from one address lock that address out.
import { beforeAll, describe, expect, test } from "vitest";
import { signIn } from "@/lib/console/operations";
import { LoginLimiter } from "@/lib/console/rate-limit";
import { verifySession } from "@/lib/console/session";
import { consoleConfig } from "@/lib/console/config";
import { configureConsole, form, PASSWORD, sameOriginHeaders } from "./helpers";

beforeAll(() => {
  configureConsole();
});

const attempt = (limiter: LoginLimiter, password: string, ip = "203.0.113.7", now = Date.now()) =>
  signIn({ headers: sameOriginHeaders({ "x-forwarded-for": `${ip}, 10.0.0.1` }), form: form({ password }), now }, limiter);

describe("sign-in", () => {
  test("the right password yields a valid session; a wrong one does not", () => {
    const limiter = new LoginLimiter();
    const wrong = attempt(limiter, "not the password");
    expect(wrong).toMatchObject({ ok: false, code: "invalid", error: "Wrong password." });
    const right = attempt(limiter, PASSWORD);
    expect(right.ok).toBe(true);
    if (right.ok) {
      expect(verifySession(consoleConfig(), right.cookieValue)).toEqual(right.session);
      expect(right.next).toBe("/");
      expect(right.secure).toBe(false);
    }
  });

  test("Secure cookie behind https, and only a local path may follow sign-in", () => {
    const res = signIn(
      {
        headers: sameOriginHeaders({ "x-forwarded-proto": "https", origin: "https://console.test:3000" }),
        form: form({ password: PASSWORD, next: "//evil.example/x" }),
      },
      new LoginLimiter(),
    );
    expect(res).toMatchObject({ ok: true, secure: true, next: "/" });
    const local = signIn({ headers: sameOriginHeaders(), form: form({ password: PASSWORD, next: "/review" }) }, new LoginLimiter());
    expect(local).toMatchObject({ ok: true, next: "/review" });
  });

  test("a sign-in posted from another site is refused", () => {
    const res = signIn(
      { headers: new Headers({ host: "console.test:3000", origin: "https://evil.example" }), form: form({ password: PASSWORD }) },
      new LoginLimiter(),
    );
    expect(res).toMatchObject({ ok: false, code: "csrf" });
  });

  test("after 5 failures from one address even the right password is refused, with a clear message; other addresses are not affected", () => {
    const limiter = new LoginLimiter();
    const t0 = Date.now();
    for (let i = 0; i < 5; i++) expect(attempt(limiter, `guess ${i}`, "203.0.113.7", t0 + i)).toMatchObject({ code: "invalid" });
    const locked = attempt(limiter, PASSWORD, "203.0.113.7", t0 + 10);
    expect(locked).toMatchObject({ ok: false, code: "rate_limited" });
    expect(!locked.ok && locked.error).toMatch(/^Too many failed sign-ins\. Try again in 15 minutes\.$/);
    expect(attempt(limiter, PASSWORD, "198.51.100.9", t0 + 10).ok).toBe(true);
    // 15 minutes after the first failure a slot frees up.
    expect(attempt(limiter, PASSWORD, "203.0.113.7", t0 + 15 * 60_000 + 1).ok).toBe(true);
  });

  test("a success clears the address's failures", () => {
    const limiter = new LoginLimiter();
    for (let i = 0; i < 4; i++) attempt(limiter, "nope");
    expect(attempt(limiter, PASSWORD).ok).toBe(true);
    for (let i = 0; i < 4; i++) expect(attempt(limiter, "nope").ok).toBe(false);
    expect(attempt(limiter, PASSWORD).ok).toBe(true);
  });

  test("the global backstop stops guessing from many addresses", () => {
    const limiter = new LoginLimiter({ perClient: 5, global: 10, windowMs: 15 * 60_000 });
    for (let i = 0; i < 10; i++) attempt(limiter, "nope", `192.0.2.${i}`);
    expect(attempt(limiter, PASSWORD, "192.0.2.200")).toMatchObject({ ok: false, code: "rate_limited" });
  });
});
