// Session cookies: signed, expiring, bound to the secret and the password; anything altered is rejected.
import { beforeAll, describe, expect, test } from "vitest";
import { consoleConfig, ConsoleConfigError } from "@/lib/console/config";
import { newSession, passwordMatches, signSession, verifySession } from "@/lib/console/session";
import { configureConsole, PASSWORD, SECRET, sessionCookie } from "./helpers";

beforeAll(() => {
  configureConsole();
});

const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString("base64url");

describe("session cookie", () => {
  test("a freshly signed session verifies and carries its id and expiry", () => {
    const config = consoleConfig();
    const { session, value } = sessionCookie(config);
    expect(verifySession(config, value)).toEqual(session);
    expect(session.expiresAt - session.issuedAt).toBe(24 * 3_600_000);
  });

  test("tampering with the payload, the signature or the format is rejected", () => {
    const config = consoleConfig();
    const { session, value } = sessionCookie(config);
    const [payload, sig] = value.split(".") as [string, string];
    // A longer expiry with the old signature.
    const extended = b64({ v: 1, sid: session.sid, iat: session.issuedAt, exp: session.expiresAt + 86_400_000 });
    expect(verifySession(config, `${extended}.${sig}`)).toBeNull();
    // Another session id with the old signature.
    expect(verifySession(config, `${b64({ v: 1, sid: "attacker", iat: session.issuedAt, exp: session.expiresAt })}.${sig}`)).toBeNull();
    // One flipped character of the signature, a truncated one, none at all.
    const flipped = sig.slice(0, -2) + (sig.at(-2) === "A" ? "B" : "A") + sig.at(-1);
    expect(verifySession(config, `${payload}.${flipped}`)).toBeNull();
    expect(verifySession(config, `${payload}.${sig.slice(0, 10)}`)).toBeNull();
    expect(verifySession(config, payload)).toBeNull();
    expect(verifySession(config, `${payload}.`)).toBeNull();
    expect(verifySession(config, `${payload}.${sig}.x`)).toBeNull();
    expect(verifySession(config, "")).toBeNull();
    expect(verifySession(config, undefined)).toBeNull();
    expect(verifySession(config, "x".repeat(5000))).toBeNull();
  });

  test("an unsigned or self-signed payload is rejected", () => {
    const config = consoleConfig();
    const forged = signSession({ ...config, sessionSecret: "another-secret-that-is-long-enough-000000" }, newSession(config));
    expect(verifySession(config, forged)).toBeNull();
  });

  test("an expired session is rejected", () => {
    const config = consoleConfig();
    const { value, session } = sessionCookie(config, Date.now() - 25 * 3_600_000);
    expect(session.expiresAt).toBeLessThan(Date.now());
    expect(verifySession(config, value)).toBeNull();
  });

  test("changing the operator password or the secret signs every session out", () => {
    const config = consoleConfig();
    const { value } = sessionCookie(config);
    expect(verifySession({ ...config, operatorPassword: "a new operator password" }, value)).toBeNull();
    expect(verifySession({ ...config, sessionSecret: `${SECRET}-rotated` }, value)).toBeNull();
    expect(verifySession(config, value)).not.toBeNull();
  });

  test("password comparison hashes both sides (any length compares without throwing)", () => {
    expect(passwordMatches(PASSWORD, PASSWORD)).toBe(true);
    expect(passwordMatches(`${PASSWORD} `, PASSWORD)).toBe(false);
    expect(passwordMatches("", PASSWORD)).toBe(false);
    expect(passwordMatches("x".repeat(10_000), PASSWORD)).toBe(false);
  });
});

describe("configuration", () => {
  test("a missing password or a short secret is refused with the variable named", () => {
    expect(() => consoleConfig({ NIGHTSHIFT_SESSION_SECRET: SECRET })).toThrow(ConsoleConfigError);
    expect(() => consoleConfig({ NIGHTSHIFT_SESSION_SECRET: SECRET })).toThrow(/NIGHTSHIFT_OPERATOR_PASSWORD/);
    expect(() => consoleConfig({ NIGHTSHIFT_OPERATOR_PASSWORD: PASSWORD, NIGHTSHIFT_SESSION_SECRET: "short" })).toThrow(
      /NIGHTSHIFT_SESSION_SECRET must be at least 32/,
    );
    expect(consoleConfig({ NIGHTSHIFT_OPERATOR_PASSWORD: PASSWORD, NIGHTSHIFT_SESSION_SECRET: SECRET, NIGHTSHIFT_SESSION_TTL_HOURS: "2" }).sessionTtlMs).toBe(
      7_200_000,
    );
  });
});
