// A dev stack that survives itself: the offline double keeps its batches across a restart; an engine restarted
// five times while a run's retry is due (and the app is down) burns no attempt; a launcher killed with -9
// leaves children that the next start ends; a taken port is named with its owner before anything starts.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Inngest } from "inngest";
import { afterAll, describe, expect, it } from "vitest";
import { startClaudeDouble } from "../../../local/claude/server";
import { reapRecorded } from "../../../local/dev-processes";
import { ManualClock, startEngine, type Engine } from "../../../local/engine";
import { assertPortsFree, freePort } from "../../../local/ports";
import { Counter, quietLogger, runFor, runReaches, serveApp, until, type ServedApp } from "../../support/engine-harness";
import { createTestDatabase } from "../../support/postgres";

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), "nightshift-devstack-"));
  dirs.push(d);
  return d;
}
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const H = { "x-api-key": "local", "anthropic-version": "2023-06-01" };

describe("dev stack restarts", () => {
  it("the Claude double keeps a batch in flight across a restart, and answers it afterwards", async () => {
    const dataDir = await tempDir();
    let double = await startClaudeDouble({ dataDir, batchDelayMs: 60_000 });
    const created = await fetch(`${double.url}/v1/messages/batches`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-api-key": "local", "anthropic-version": "2023-06-01" },
      body: JSON.stringify({
        requests: [{ custom_id: "turn-1", params: { model: "claude-sonnet-4-6", max_tokens: 64, messages: [{ role: "user", content: "Hi" }] } }],
      }),
    });
    expect(created.status).toBe(200);
    const { id, processing_status } = (await created.json()) as { id: string; processing_status: string };
    expect(processing_status).toBe("in_progress");
    await double.stop();

    double = await startClaudeDouble({ dataDir, batchDelayMs: 60_000 });
    try {
      const again = await fetch(`${double.url}/v1/messages/batches/${id}`, { headers: H });
      expect(again.status).toBe(200);
      double.clock.advance(61_000);
      const ended = (await (await fetch(`${double.url}/v1/messages/batches/${id}`, { headers: H })).json()) as {
        processing_status: string;
      };
      expect(ended.processing_status).toBe("ended");
      const results = await (await fetch(`${double.url}/v1/messages/batches/${id}/results`, { headers: H })).text();
      expect(JSON.parse(results.trim()).result.type).toBe("succeeded");
    } finally {
      await double.stop();
    }
  });

  it("five engine restarts while a run's retry is due and the app is down: the run completes, no attempt burnt", async () => {
    const db = await createTestDatabase({ empty: true });
    const enginePort = await freePort();
    const appPort = await freePort();
    const clock = new ManualClock(Date.parse("2030-01-01T00:00:00Z"));
    const refusals: number[] = [];
    let generation = 0;
    const start = () => {
      const g = ++generation;
      return startEngine({
        databaseUrl: db.url,
        port: enginePort,
        clock,
        log: (l) => {
          if (process.env["ENGINE_DEBUG"]) console.log(`[engine ${g}] ${l}`);
          if (l.includes("refuses connections")) refusals.push(g);
        },
      });
    };
    let engine: Engine = await start();
    let app: ServedApp | undefined;
    const counter = new Counter();
    const inngest = new Inngest({ id: "restarts", isDev: true, baseUrl: engine.url, logger: quietLogger });
    // retries: 1 — two attempts in all. A single burnt attempt would fail the run.
    const fn = inngest.createFunction({ id: "flaky", retries: 1, triggers: [{ event: "restarts/go" }] }, async ({ step }) => {
      const a = await step.run("first", () => (counter.hit("first"), 1));
      const b = await step.run("flaky", () => {
        counter.hit("flaky");
        if (counter.get("flaky") === 1) throw new Error("transient");
        return 2;
      });
      return a + b;
    });
    try {
      app = await serveApp(inngest, [fn], undefined, appPort);
      await engine.sync(app.url);
      const [eventId] = await engine.send({ name: "restarts/go", data: {} });
      const runId = await runFor(engine, eventId!, "restarts-flaky");
      await until(async () => (await engine.getRun(runId))?.history.some((h) => h.type === "step.errored"), { message: "no step error" });
      await app.close(); // the app goes away (next dev restarting)
      app = undefined;
      clock.advance(60_000); // the retry is due now
      for (let i = 0; i < 5; i++) {
        const g = generation;
        await until(() => refusals.includes(g), { message: `engine ${g} did not try the app` });
        await engine.stop();
        engine = await start();
      }
      const last = generation;
      await until(() => refusals.includes(last), { message: "the last engine did not try the app" });
      app = await serveApp(inngest, [fn], undefined, appPort);
      const run = await runReaches(engine, runId, "completed", { timeoutMs: 30_000 });
      expect(run.output).toBe(3);
      expect(counter.get("first")).toBe(1);
      expect(counter.get("flaky")).toBe(2);
      expect(run.history.filter((h) => h.type === "step.errored")).toHaveLength(1);
      expect(run.history.filter((h) => h.type === "run.retrying")).toHaveLength(0);
    } finally {
      await app?.close();
      await engine.stop();
      await db.drop().catch(() => {});
    }
  });

  it("after kill -9 of the launcher, the next start ends the children it recorded", async () => {
    const dataDir = await tempDir();
    const launcher = spawn(process.execPath, ["--import", "tsx", "tests/support/fake-launcher.ts", dataDir], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    const child = await new Promise<number>((resolve, reject) => {
      launcher.stdout!.on("data", (b: Buffer) => {
        out += b.toString();
        const m = /"child":(\d+)/.exec(out);
        if (m) resolve(Number(m[1]));
      });
      launcher.once("exit", (c) => reject(new Error(`launcher exited (${c}): ${out}`)));
    });
    const exited = new Promise((r) => launcher.once("exit", r));
    launcher.kill("SIGKILL");
    await exited;
    expect(existsSync(`/proc/${child}`)).toBe(true); // orphaned, still running
    const ended = await reapRecorded(dataDir);
    expect(ended).toEqual([`next dev (pid ${child})`]);
    await until(async () => {
      const { readFile } = await import("node:fs/promises");
      const stat = await readFile(`/proc/${child}/stat`, "utf8").catch(() => "");
      return !stat || stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
    }, { message: "the orphan is still alive" });
    expect(await reapRecorded(dataDir)).toEqual([]); // nothing left to end, and no recycled pid is touched
  });

  it("a taken port is named, with the process that holds it, before anything starts", async () => {
    const srv = createServer();
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", () => r()));
    const port = (srv.address() as { port: number }).port;
    try {
      const err = await assertPortsFree([{ port, use: "the app (PORT)" }]).then(() => undefined, (e: Error) => e);
      expect(err?.message).toContain(`port ${port} (the app (PORT)) is taken by pid ${process.pid}`);
    } finally {
      srv.close();
    }
    await expect(assertPortsFree([{ port, use: "the app (PORT)" }])).resolves.toBeUndefined();
  });
});
