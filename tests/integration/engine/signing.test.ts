// Signed cloud mode, the refusals: a wrong event key, a sync with another signing key, a request the app
// cannot verify, and an app response whose signature does not verify.
import { randomBytes } from "node:crypto";
import type { ServerResponse } from "node:http";
import { Inngest } from "inngest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { canonical, signRequest } from "../../../local/engine/signing";
import { quietLogger, runFor, serveApp, startTestEngine, until, type TestEngine } from "../../support/engine-harness";

const key = () => `signkey-test-${randomBytes(32).toString("hex")}`;

describe("local engine signed mode", () => {
  let t: TestEngine;
  const signingKey = key();

  beforeAll(async () => {
    t = await startTestEngine({ signingKey, eventKey: "right-key" });
  });
  afterAll(async () => {
    await t?.close();
  });

  const client = (id: string, sk = signingKey, eventKey = "right-key") =>
    new Inngest({ id, isDev: false, baseUrl: t.engine.url, signingKey: sk, eventKey, logger: quietLogger });

  it("refuses events with the wrong event key (401)", async () => {
    const res = await fetch(`${t.engine.url}/e/wrong-key`, { method: "POST", body: JSON.stringify({ name: "a/b", data: {} }) });
    expect(res.status).toBe(401);
    await expect(client("keys", signingKey, "wrong-key").send({ name: "a/b", data: {} })).rejects.toThrow();
    const ok = await client("keys").send({ name: "a/b", data: {} });
    expect(ok.ids).toHaveLength(1);
  });

  it("refuses a sync from an app with another signing key", async () => {
    const other = client("intruder", key());
    const app = await serveApp(other, [other.createFunction({ id: "f", triggers: [{ event: "a/b" }] }, async () => 1)]);
    try {
      await expect(t.engine.sync(app.url)).rejects.toThrow(/401|signing key/);
    } finally {
      await app.close();
    }
  });

  it("signs its calls so the app accepts them, and the app rejects a forged signature", async () => {
    const c = client("signed-app");
    const fn = c.createFunction({ id: "echo", triggers: [{ event: "signed/echo" }] }, async ({ event }) => event.data);
    const app = await serveApp(c, [fn]);
    try {
      expect(c.mode).toBe("cloud");
      await t.engine.sync(app.url);
      const [eventId] = await c.send({ name: "signed/echo", data: { v: 1 } }).then((r) => r.ids);
      const runId = await runFor(t.engine, eventId!, "signed-app-echo");
      await until(async () => (await t.engine.getRun(runId))?.status === "completed");
      // A body signed with another key is refused by the SDK.
      const body = { version: 2, event: { name: "signed/echo", data: {} }, events: [], steps: {}, ctx: { run_id: "x", attempt: 0, disable_immediate_execution: false, use_api: false, stack: { stack: [], current: 0 } } };
      const res = await fetch(`${app.url}?fnId=signed-app-echo&stepId=step`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-inngest-signature": signRequest(canonical(body), key()) },
        body: JSON.stringify(body),
      });
      expect(res.status).toBe(401);
    } finally {
      await app.close();
    }
  });

  it("does not trust an app response whose signature does not verify", async () => {
    const c = client("tampered");
    const fn = c.createFunction({ id: "f", triggers: [{ event: "tamper/go" }] }, async () => "should not be accepted");
    const app = await serveApp(c, [fn], (handler) => (req, res) => {
      const orig = res.writeHead.bind(res) as (s: number, h?: Record<string, string>) => ServerResponse;
      (res as unknown as { writeHead: typeof orig }).writeHead = (status, headers) => {
        for (const k of Object.keys(headers ?? {})) if (k.toLowerCase() === "x-inngest-signature") headers![k] = `t=${Math.floor(Date.now() / 1000)}&s=00ff`;
        return orig(status, headers);
      };
      return handler(req, res);
    });
    try {
      await t.engine.sync(app.url);
      const [eventId] = await t.engine.send({ name: "tamper/go", data: {} });
      const runId = await runFor(t.engine, eventId!, "tampered-f");
      const retry = await until(async () => (await t.engine.getRun(runId))?.history.find((h) => h.type === "run.retrying"));
      expect(JSON.stringify(retry.detail)).toContain("X-Inngest-Signature");
      expect((await t.engine.getRun(runId))?.status).not.toBe("completed");
    } finally {
      await app.close();
    }
  });

  it("requires the signing key on the read API", async () => {
    expect((await fetch(`${t.engine.url}/v0/runs`)).status).toBe(401);
    const ok = await fetch(`${t.engine.url}/v0/runs`, { headers: { authorization: `Bearer ${signingKey}` } });
    expect(ok.status).toBe(200);
  });
});
