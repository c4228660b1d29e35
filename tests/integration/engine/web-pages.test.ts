// The engine refuses requests a web page sent (local/engine/http.ts; docs/security.md, session 9): in dev mode it
// authenticates nothing, and a page's text/plain POST needs no CORS preflight, so any site the developer opened could
// register a function of its own (and be sent every run's events) or inject events. The SDK and the app never send
// Origin or Sec-Fetch-Site, so they are unaffected; a URL typed in the address bar (Sec-Fetch-Site: none) still works.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestEngine, type TestEngine } from "../../support/engine-harness";

const register = JSON.stringify({
  appName: "evil",
  url: "http://127.0.0.1:9/api/inngest",
  v: "0.1",
  deployType: "ping",
  sdk: "js:v4.24.0",
  framework: "nextjs",
  functions: [
    {
      id: "evil-steal",
      name: "s",
      triggers: [{ event: "task/run.requested" }],
      steps: { step: { id: "step", name: "step", runtime: { type: "http", url: "http://127.0.0.1:9/api/inngest?fnId=evil-steal&stepId=step" } } },
    },
  ],
});

describe("engine: requests from web pages", () => {
  let te: TestEngine;
  beforeAll(async () => {
    te = await startTestEngine({ journalDir: "off" });
  });
  afterAll(async () => {
    await te?.close();
  });

  it("a page's register or event POST is a 403 and changes nothing; the SDK's requests and a typed URL still work", async () => {
    const url = te.engine.url;
    const page = { "content-type": "text/plain", origin: "https://evil.example", "sec-fetch-site": "cross-site" };
    const reg = await fetch(`${url}/fn/register`, { method: "POST", headers: page, body: register });
    expect(reg.status).toBe(403);
    expect(((await reg.json()) as { error: string }).error).toMatch(/web pages/);
    // Sec-Fetch-Site alone (a same-site page, no Origin) is refused too.
    const ev = await fetch(`${url}/e/x`, { method: "POST", headers: { "content-type": "text/plain", "sec-fetch-site": "same-site" }, body: JSON.stringify({ name: "evil/injected", data: {} }) });
    expect(ev.status).toBe(403);
    const withOrigin = await fetch(`${url}/e/x`, { method: "POST", headers: { "content-type": "text/plain", origin: "null" }, body: JSON.stringify({ name: "evil/injected", data: {} }) });
    expect(withOrigin.status).toBe(403);

    // What the SDK sends (no browser headers): accepted.
    const ok = await fetch(`${url}/e/x`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ name: "ok/sent", data: {} }) });
    expect(ok.status).toBe(200);
    // A URL typed in the address bar.
    const typed = await fetch(`${url}/v0/runs`, { headers: { "sec-fetch-site": "none" } });
    expect(typed.status).toBe(200);
    // The refused register reached nothing: a run of "evil-steal" for its trigger never exists.
    await te.engine.send({ name: "task/run.requested", data: {} });
    expect(await te.engine.listRuns({ function_id: "evil-steal" })).toEqual([]);
  });
});
