// proxy.ts, called as Next calls it: every console page redirects to /login without a valid session, and a
// cross-site POST is refused before any server action runs.
import { NextRequest } from "next/server";
import { beforeAll, describe, expect, test } from "vitest";
import { config as proxyConfig, proxy } from "@/proxy";
import { SESSION_COOKIE } from "@/lib/console/session";
import { unknownMethodAnswer } from "@/lib/http/forbidden-methods";
import { PROXY_FREE_API_PATHS } from "@/lib/http/security-headers";
import nextConfig from "@/next.config";
import { APP, configureConsole, sessionCookie } from "./helpers";

const PAGES = ["/", "/review", "/tasks/7b0f6a52-3a8e-4c52-9d3a-2d1c1f0e9a11", "/?status=failed&agent=research", "/anything-else"];

beforeAll(() => {
  configureConsole();
});

function get(path: string, cookie?: string): NextRequest {
  return new NextRequest(`${APP}${path}`, { headers: cookie ? { cookie: `${SESSION_COOKIE}=${cookie}` } : {} });
}

function matches(path: string): boolean {
  return proxyConfig.matcher.some((m) => new RegExp(`^${m}$`).test(path));
}

describe("pages need a session", () => {
  test.each(PAGES)("GET %s without a session redirects to /login", (path) => {
    const res = proxy(get(path));
    expect(res.status).toBe(303);
    const to = new URL(res.headers.get("location")!);
    expect(to.pathname).toBe("/login");
    if (path !== "/") expect(to.searchParams.get("next")).toBe(path);
  });

  test.each(PAGES)("GET %s with a tampered or expired cookie redirects to /login", (path) => {
    const { value } = sessionCookie();
    const tampered = value.replace(/.$/, (c) => (c === "A" ? "B" : "A"));
    expect(proxy(get(path, tampered)).status).toBe(303);
    expect(proxy(get(path, sessionCookie(undefined, Date.now() - 48 * 3_600_000).value)).status).toBe(303);
    expect(proxy(get(path, "garbage")).status).toBe(303);
  });

  test.each(PAGES)("GET %s with a valid session passes through", (path) => {
    const res = proxy(get(path, sessionCookie().value));
    expect(res.status).toBe(200);
    expect(res.headers.get("x-middleware-next")).toBe("1");
  });

  test("the sign-in page itself is open", () => {
    expect(proxy(get("/login")).headers.get("x-middleware-next")).toBe("1");
  });

  test("without configuration every page still redirects to /login (which names the missing variable)", () => {
    const saved = process.env.NIGHTSHIFT_SESSION_SECRET;
    const { value } = sessionCookie();
    delete process.env.NIGHTSHIFT_SESSION_SECRET;
    try {
      expect(proxy(get("/", value)).status).toBe(303);
    } finally {
      process.env.NIGHTSHIFT_SESSION_SECRET = saved;
    }
  });

  test("the matcher covers the console pages and the API, not static assets nor the exact hot API paths", () => {
    for (const p of ["/", "/review", "/tasks/abc", "/login", "/api/approvals/1", "/api/inngest", "/api/tasks/abc", "/api/tasks/%zz", "/api/tasks/x/cancel", "/api/healthz", "/api/health/x"]) {
      expect(matches(p), p).toBe(true);
    }
    for (const p of ["/_next/static/chunks/a.js", "/favicon.ico"]) expect(matches(p), p).toBe(false);
    // The paths it skips are exactly PROXY_FREE_API_PATHS, whose contract lives elsewhere (tested below).
    for (const p of PROXY_FREE_API_PATHS) expect(matches(p), p).toBe(false);
  });

  test("the hot API paths proxy.ts skips get the API CSP from next.config.ts's headers()", async () => {
    const rules = (await nextConfig.headers!()) as { source: string; headers: { key: string; value: string }[] }[];
    for (const p of PROXY_FREE_API_PATHS) {
      const rule = rules.find((r) => r.source === p);
      expect(rule?.headers).toContainEqual({ key: "Content-Security-Policy", value: "default-src 'none'; frame-ancestors 'none'" });
    }
  });

  test("a method Next has no slot for is a JSON 405 under /api and a plain 405 elsewhere, before Next (any matcher)", async () => {
    for (const method of ["PROPFIND", "M-SEARCH", "TRACE", "TRACK"]) {
      for (const path of ["/api/tasks", "/api/health?x=1", "/api/tasks/abc"]) {
        const a = unknownMethodAnswer(method, path)!;
        expect(a.status).toBe(405);
        expect(a.headers["Content-Type"]).toBe("application/json");
        expect(a.headers["Content-Security-Policy"]).toBe("default-src 'none'; frame-ancestors 'none'");
        expect(a.headers["X-Content-Type-Options"]).toBe("nosniff");
        expect((JSON.parse(a.body) as { error: { code: string } }).error.code).toBe("method_not_allowed");
      }
      const page = unknownMethodAnswer(method, "/login")!;
      expect(page.status).toBe(405);
      expect(page.headers["Content-Type"]).toMatch(/^text\/plain/);
      // proxy.ts answers the same where it runs.
      const viaProxy = proxy(new NextRequest(`${APP}/api/tasks/abc`, { method: method === "TRACE" || method === "TRACK" ? "PROPFIND" : method }));
      expect(viaProxy.status).toBe(405);
    }
    for (const method of ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]) expect(unknownMethodAnswer(method, "/api/tasks")).toBeNull();
  });

  test("the API passes through untouched by session and origin checks (API-key auth is the routes' job)", () => {
    const res = proxy(
      new NextRequest(`${APP}/api/tasks`, { method: "POST", headers: { host: "console.test:3000", origin: "https://other.example" }, body: "{}" }),
    );
    expect(res.headers.get("x-middleware-next")).toBe("1");
    expect(res.headers.get("content-security-policy")).toBe("default-src 'none'; frame-ancestors 'none'");
  });

  test("a malformed percent-escape is a JSON 400 under /api and a plain 400 elsewhere", async () => {
    const api = proxy(new NextRequest(`${APP}/api/tasks/%zz`, { headers: { host: "console.test:3000" } }));
    expect(api.status).toBe(400);
    expect(((await api.json()) as { error: { code: string } }).error.code).toBe("invalid_path");
    const page = proxy(new NextRequest(`${APP}/tasks/%E0%A4%A`, { headers: { host: "console.test:3000" } }));
    expect(page.status).toBe(400);
  });
});

describe("cross-site POSTs are refused", () => {
  const post = (path: string, headers: Record<string, string>, cookie?: string) =>
    new NextRequest(`${APP}${path}`, {
      method: "POST",
      headers: { host: "console.test:3000", ...(cookie ? { cookie: `${SESSION_COOKIE}=${cookie}` } : {}), ...headers },
      body: "x",
    });

  test("a POST with a foreign Origin is refused with 403, even with a valid session", async () => {
    const { value } = sessionCookie();
    for (const path of ["/", "/review", "/login"]) {
      const res = proxy(post(path, { origin: "https://evil.example", "sec-fetch-site": "cross-site" }, value));
      expect(res.status).toBe(403);
      expect(await res.text()).toMatch(/cross-site|foreign Origin/);
    }
    expect(proxy(post("/", { origin: "https://evil.example" }, value)).status).toBe(403);
    expect(proxy(post("/", { origin: "null" }, value)).status).toBe(403);
    expect(proxy(post("/", { "sec-fetch-site": "same-site" }, value)).status).toBe(403);
  });

  test("a POST with neither Origin nor Sec-Fetch-Site is refused", () => {
    expect(proxy(post("/", {}, sessionCookie().value)).status).toBe(403);
  });

  test("a same-origin POST without a session is refused with 401; with one it passes to the action", () => {
    const same = { origin: APP, "sec-fetch-site": "same-origin" };
    expect(proxy(post("/", same)).status).toBe(401);
    expect(proxy(post("/", same, sessionCookie().value)).headers.get("x-middleware-next")).toBe("1");
    expect(proxy(post("/login", same)).headers.get("x-middleware-next")).toBe("1");
  });
});
