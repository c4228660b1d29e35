// Crash durability: the engine runs as its own process (local/engine/main.ts), is killed with SIGKILL in the
// middle of a step and again during a sleep, restarts on the same database, and the run completes with every
// completed step body having run exactly once. Run in both execution flows: with checkpointing, s1 and s2 are
// checkpointed inside the request that is still running s3 when the engine dies, and must not run again.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Inngest } from "inngest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EngineMode } from "../../../local/engine";
import { freePort } from "../../../local/ports";
import { Counter, latch, quietLogger, serveApp, until, type ServedApp } from "../../support/engine-harness";
import { kill9, startEngineProcess as startEngine, type EngineProcess as Child } from "../../support/engine-process";
import { createTestDatabase, type TestDatabase } from "../../support/postgres";

async function startEngineProcess(databaseUrl: string, port: number, mode: EngineMode, journalDir: string): Promise<Child> {
  return startEngine({ databaseUrl, port, mode, journalDir });
}

// The journal (the default durable point) in both execution flows; Postgres as the durable point (journal off) once.
const CASES: [EngineMode, "journal" | "no journal"][] = [
  ["checkpoint", "journal"],
  ["classic", "journal"],
  ["checkpoint", "no journal"],
];

describe.each(CASES)("local engine durability across kill -9 (%s execution, %s)", (mode, journal) => {
  let db: TestDatabase;
  let app: ServedApp;
  let engine: Child | undefined;
  let port: number;
  const counter = new Counter();
  const hold = latch();
  const dir = mkdtempSync(join(tmpdir(), "nightshift-durability-"));
  const journalDir = journal === "journal" ? dir : "off";

  beforeAll(async () => {
    db = await createTestDatabase({ empty: true });
    port = await freePort();
    engine = await startEngineProcess(db.url, port, mode, journalDir);
    const inngest = new Inngest({ id: "durable", isDev: true, baseUrl: `http://127.0.0.1:${port}`, logger: quietLogger });
    const fn = inngest.createFunction({ id: "five-steps", triggers: [{ event: "durable/go" }] }, async ({ step }) => {
      const a = await step.run("s1", () => (counter.hit("s1"), 1));
      const b = await step.run("s2", () => (counter.hit("s2"), a + 1));
      const c = await step.run("s3", async () => {
        counter.hit("s3");
        if (counter.get("s3") === 1) {
          hold.arrive();
          await hold.promise; // the engine is killed while this step is in flight
        }
        return b + 1;
      });
      await step.sleep("nap", "3s"); // the engine is killed again during this sleep
      return step.run("s4", () => (counter.hit("s4"), c + 1));
    });
    app = await serveApp(inngest, [fn]);
    const res = await fetch(app.url, { method: "PUT" });
    expect(res.status).toBe(200);
  });

  afterAll(async () => {
    if (engine) await kill9(engine);
    await app?.close();
    await db?.drop().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  });

  const api = async (path: string) => (await fetch(`http://127.0.0.1:${port}${path}`)).json();

  it("finishes the run from its last memoized step after two hard kills", async () => {
    const send = await fetch(`http://127.0.0.1:${port}/e/local`, {
      method: "POST",
      body: JSON.stringify({ name: "durable/go", data: {} }),
    });
    const { ids } = (await send.json()) as { ids: string[] };
    await hold.reached;
    await kill9(engine!); // crash while s3 runs: s1 and s2 are memoized, s3 is not
    hold.open();
    engine = await startEngineProcess(db.url, port, mode, journalDir);
    const runs = (await api(`/v0/runs?event_id=${ids[0]}`)) as { data: { run_id: string }[] };
    const runId = runs.data[0]!.run_id;
    await until(async () => (await api(`/v0/runs/${runId}`)).status === "sleeping", { timeoutMs: 30_000, intervalMs: 50 });
    await kill9(engine); // crash during the sleep: the timer must survive
    engine = await startEngineProcess(db.url, port, mode, journalDir);
    const run = await until(
      async () => {
        const r = await api(`/v0/runs/${runId}`);
        return r.status === "completed" ? r : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 50 },
    );
    expect(run.output).toBe(4);
    expect(counter.get("s1")).toBe(1);
    expect(counter.get("s2")).toBe(1);
    expect(counter.get("s3")).toBe(2); // in flight at the first kill: not completed, so it runs again
    expect(counter.get("s4")).toBe(1);
    const checkpointed = (run.history as { type: string; step_name: string; detail: unknown }[])
      .filter((x) => x.type === "step.completed" && (x.detail as { checkpointed?: boolean } | null)?.checkpointed)
      .map((x) => x.step_name);
    // s1 and s2 came in by checkpoint in the request the first kill interrupted.
    if (mode === "checkpoint") expect(checkpointed).toEqual(expect.arrayContaining(["s1", "s2"]));
    else expect(checkpointed).toEqual([]);
  });
});
