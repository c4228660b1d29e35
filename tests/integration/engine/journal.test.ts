// The engine's journal (local/engine/journal.ts, wired into Store): a transition is acknowledged once it is in the
// journal file, and applied to Postgres in the background, in order. On the real Postgres, with the applier held
// (the test hook) where a test must see "acknowledged, not yet in Postgres": reads wait for the applier (barrier), a
// restart applies what a crash left in the journal (a torn last line ignored), a journal whose row is not in the
// database is never applied to it, a document Postgres refuses is never acknowledged early and never wedges the
// applier, concurrent transitions all land; and an engine killed with -9 after acknowledging checkpoints that never
// reached Postgres finishes the run from its journal without running those steps again.
import { closeSync, existsSync, openSync, readFileSync, readdirSync, writeSync } from "node:fs";
import { Inngest } from "inngest";
import pg from "pg";
import { describe, expect, it } from "vitest";
import { Store, type RunRow } from "../../../local/engine/store";
import { freePort } from "../../../local/ports";
import { Counter, latch, latchedThreeSteps, queuedRun, quietLogger, runFor, runReaches, serveApp, startTestEngine, until } from "../../support/engine-harness";
import { kill9, startEngineProcess } from "../../support/engine-process";
import { createTestDatabase, useEmptyDatabase } from "../../support/postgres";
import { sql } from "../db/sql";

const run = (id: string, output: unknown = null) => queuedRun(id, { output });

const memo = (runId: string, i: number) => ({ run_id: runId, hash: `h${i}`, pos: i, value: { data: { i } }, at: i });

async function count(url: string, text: string, args: unknown[] = []): Promise<number> {
  return Number((await sql<{ n: string }>(url, text, args))[0]!.n);
}

async function openStore(url: string, dir: string | undefined, lines: string[] = []): Promise<Store> {
  const store = new Store(url, { log: (l) => lines.push(l) });
  await store.migrate();
  await store.recoverJournals();
  if (dir) await store.openJournal(dir);
  return store;
}

describe("engine journal (store)", () => {
  const t = useEmptyDatabase({ dirPrefix: "nightshift-journal-" });

  it("acknowledges from the journal; a read waits until Postgres has what was acknowledged before it", async () => {
    const store = await openStore(t.db.url, t.dir);
    try {
      store.holdJournal(true);
      await store.apply({ runs: [run("barrier")], memos: [memo("barrier", 0)] }); // acknowledged...
      expect(await count(t.db.url, "SELECT count(*) AS n FROM inngest_local.memos WHERE run_id = 'barrier'")).toBe(0); // ...not applied
      let read: unknown;
      const reading = store.loadMemos("barrier").then((m) => (read = m));
      await new Promise((r) => setTimeout(r, 50));
      expect(read).toBeUndefined(); // the read waits for the applier
      store.holdJournal(false);
      await reading;
      expect(read).toEqual([{ run_id: "barrier", hash: "h0", pos: 0, value: { data: { i: 0 } }, at: 0 }]);
      expect((await store.getRun("barrier"))?.id).toBe("barrier");
      expect(await count(t.db.url, "SELECT applied_seq AS n FROM inngest_local.journals")).toBe(1); // moved by the same statement
    } finally {
      await store.close();
    }
    // Stopped cleanly: everything applied, the journal retired (row and file).
    expect(await count(t.db.url, "SELECT count(*) AS n FROM inngest_local.journals")).toBe(0);
    expect(readdirSync(t.dir)).toEqual([]);
  });

  it("a restart applies what a stop left in the journal, once, ignoring a torn last line; another database's journal is never applied", async () => {
    const lines: string[] = [];
    const crashed = await openStore(t.db.url, t.dir, lines);
    crashed.holdJournal(true);
    await Promise.all(["j1", "j2", "j3"].map((id) => crashed.apply({ runs: [run(id)] })));
    await crashed.apply({ runUpdates: [{ id: "j2", status: "running" }] });
    const path = crashed.journalPath!;
    await crashed.close(); // held: the journal is kept, as after a crash
    expect(lines.some((l) => l.includes("kept"))).toBe(true);
    // A write the crash cut short: half a line where the next record would go (the file is zero-filled ahead).
    const end = readFileSync(path).indexOf(0);
    const fd = openSync(path, "r+");
    writeSync(fd, Buffer.from('{"seq":5,"doc":{"runs":[{"id":"torn","function_id":"x"'), 0, undefined, end);
    closeSync(fd);

    // A fresh database with the same journal directory: the file has no row there, so nothing of it is applied.
    const other = await createTestDatabase({ empty: true });
    try {
      const fresh = await openStore(other.url, t.dir);
      await fresh.close();
      expect(await count(other.url, "SELECT count(*) AS n FROM inngest_local.runs")).toBe(0);
      expect(existsSync(path)).toBe(true); // and it is left alone
    } finally {
      await other.drop().catch(() => {});
    }

    const restarted = await openStore(t.db.url, t.dir, lines);
    try {
      expect(await count(t.db.url, "SELECT count(*) AS n FROM inngest_local.runs WHERE id IN ('j1', 'j2', 'j3')")).toBe(3);
      expect((await restarted.getRun("j2"))?.status).toBe("running");
      expect(await count(t.db.url, "SELECT count(*) AS n FROM inngest_local.runs WHERE id = 'torn'")).toBe(0);
      expect(existsSync(path)).toBe(false); // retired
      expect(lines.some((l) => /applied 4 journaled transitions/.test(l))).toBe(true);
    } finally {
      await restarted.close();
    }
    // Applied once: a second restart finds no journal left to apply (a replay would fail on the runs' primary key).
    const again = await openStore(t.db.url, t.dir, lines);
    await again.close();
    expect(await count(t.db.url, "SELECT count(*) AS n FROM inngest_local.runs WHERE id LIKE 'j_'")).toBe(3);
  });

  it("a transition Postgres refuses (\\u0000) is rejected as without the journal and never wedges the applier", async () => {
    for (const journalDir of [t.dir, undefined]) {
      const store = await openStore(t.db.url, journalDir);
      const tag = journalDir ? "on" : "off";
      try {
        const before = store.apply({ runs: [run(`nul-before-${tag}`)] });
        const bad = store.apply({ runs: [run(`nul-${tag}`, { text: "a\u0000b" })] });
        const lone = store.apply({ memos: [{ ...memo(`nul-before-${tag}`, 1), value: { data: "\ud800" } }] });
        const after = store.apply({ runs: [run(`nul-after-${tag}`)] });
        const settled = await Promise.allSettled([before, bad, lone, after]);
        expect(settled.map((s) => s.status)).toEqual(["fulfilled", "rejected", "rejected", "fulfilled"]);
        expect(String((settled[1] as PromiseRejectedResult).reason)).toMatch(/\\u0000|unicode/i);
        expect((await store.listRuns({ limit: 1000 })).map((r) => r.id).filter((id) => id.endsWith(tag)).sort()).toEqual([
          `nul-after-${tag}`,
          `nul-before-${tag}`,
        ]);
      } finally {
        await store.close();
      }
    }
  });

  it("Postgres unreachable: acknowledgements keep coming from the journal, reads wait, and everything lands when it is back", async () => {
    const admin = t.db.url.replace(/\/[^/]*$/, "/postgres");
    const lines: string[] = [];
    const store = await openStore(t.db.url, t.dir, lines);
    const other = new pg.Client({ connectionString: admin });
    await other.connect();
    try {
      // Postgres stops taking connections to this database and drops the ones it has (the engine's pool included).
      await other.query(`ALTER DATABASE ${t.db.name} ALLOW_CONNECTIONS false`);
      await other.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", [t.db.name]);
      await Promise.all(Array.from({ length: 5 }, (_, i) => store.apply({ runs: [run(`down-${i}`)] }))); // acknowledged all the same
      let read: unknown;
      const reading = store.getRun("down-4").then((r) => (read = r));
      // The outage lasts until the applier has met it (and took it for an outage, not for a refusal of the records).
      await until(() => lines.some((l) => l.includes("Postgres unavailable")), { message: "the applier never met the outage" });
      expect(read).toBeUndefined(); // waiting for the applier, which waits for Postgres
      await other.query(`ALTER DATABASE ${t.db.name} ALLOW_CONNECTIONS true`);
      await reading;
      expect((read as RunRow).id).toBe("down-4");
      expect(await count(t.db.url, "SELECT count(*) AS n FROM inngest_local.runs WHERE id LIKE 'down-%'")).toBe(5);
      expect(lines.filter((l) => /rejected|SKIPPED/.test(l))).toEqual([]);
    } finally {
      await other.query(`ALTER DATABASE ${t.db.name} ALLOW_CONNECTIONS true`).catch(() => {});
      await other.end();
      await store.close();
    }
  });

  it("the applier's pace holds nothing back for good: transitions written right after a statement land with no further write or read", async () => {
    const store = await openStore(t.db.url, t.dir);
    try {
      await store.apply({ runs: [run("paced")] });
      // Within the applier's minimum gap of the first statement: held back, then sent by its timer (no write follows).
      for (let i = 0; i < 5; i++) await store.apply({ memos: [memo("paced", i)] });
      const landed = () => count(t.db.url, "SELECT count(*) AS n FROM inngest_local.memos WHERE run_id = 'paced'");
      await until(async () => (await landed()) === 5, { message: "the held-back transitions reached Postgres" });
      expect(await count(t.db.url, "SELECT applied_seq AS n FROM inngest_local.journals")).toBe(6);
    } finally {
      await store.close();
    }
  });

  it("concurrent runs' transitions interleave and all land, in order per run, while the applier lags", async () => {
    const store = await openStore(t.db.url, t.dir);
    try {
      const RUNS = 20;
      const STEPS = 30;
      await Promise.all(Array.from({ length: RUNS }, (_, r) => store.apply({ runs: [run(`hammer-${r}`)] })));
      const steps = async (r: number, from: number, to: number) => {
        for (let i = from; i < to; i++) {
          await store.apply({ memos: [memo(`hammer-${r}`, i)], runUpdates: [{ id: `hammer-${r}`, status: "running", output: i }] });
        }
      };
      // Half of the steps while the applier is held (they pile up in the journal), the rest while it catches up.
      store.holdJournal(true);
      await Promise.all(Array.from({ length: RUNS }, (_, r) => steps(r, 0, STEPS / 2)));
      expect(await count(t.db.url, "SELECT count(*) AS n FROM inngest_local.memos WHERE run_id LIKE 'hammer-%'")).toBe(0);
      store.holdJournal(false);
      await Promise.all(Array.from({ length: RUNS }, (_, r) => steps(r, STEPS / 2, STEPS)));
      const runs = await store.listRuns({ limit: 1000 });
      for (let r = 0; r < RUNS; r++) {
        expect(runs.find((x) => x.id === `hammer-${r}`)?.output).toBe(STEPS - 1); // the last update of each run won
        expect((await store.loadMemos(`hammer-${r}`)).map((m) => m.pos)).toEqual(Array.from({ length: STEPS }, (_, i) => i));
      }
    } finally {
      await store.close();
    }
  });
});

// What main did before the journal (journal off), the journal must do too: the SDK's checkpoint of a step whose output
// holds \u0000 fails (Postgres refuses it; the engine answers 500), the SDK goes on, and the run completes without that
// step in its history — and the engine goes on working.
describe.each(["journal", "off"])("a step output Postgres refuses (\\u0000), %s", (journal) => {
  it("behaves the same with and without the journal, and never wedges the engine", async () => {
    const te = await startTestEngine({ journalDir: journal === "off" ? "off" : undefined });
    const inngest = new Inngest({ id: "nul", isDev: true, baseUrl: te.engine.url, logger: quietLogger });
    const fn = inngest.createFunction({ id: "nul", retries: 0, triggers: [{ event: "nul/go" }] }, async ({ step }) => {
      const a = await step.run("nul", () => "a\u0000b");
      const b = await step.run("after", () => 1);
      return [a.length, b];
    });
    const fine = inngest.createFunction({ id: "fine", triggers: [{ event: "nul/fine" }] }, async ({ step }) => step.run("one", () => 7));
    const app = await serveApp(inngest, [fn, fine]);
    try {
      await te.engine.sync(app.url);
      const [bad] = await te.engine.send({ name: "nul/go", data: {} });
      const run = await runReaches(te.engine, await runFor(te.engine, bad!, "nul-nul"), ["completed", "failed"], { timeoutMs: 60_000 });
      expect(run.status).toBe("completed");
      expect(run.output).toEqual([3, 1]);
      expect(run.history.filter((h) => h.type === "step.completed").map((h) => h.step_name)).toEqual(["after"]);
      const [ok] = await te.engine.send({ name: "nul/fine", data: {} });
      expect((await runReaches(te.engine, await runFor(te.engine, ok!, "nul-fine"), "completed", { timeoutMs: 60_000 })).output).toBe(7);
    } finally {
      await app.close();
      await te.close();
    }
  });
});

describe("engine journal across kill -9 (engine process)", () => {
  const t = useEmptyDatabase({ dirPrefix: "nightshift-journal-kill-" });

  it("checkpoints acknowledged but not yet in Postgres are never run again after a crash; the run completes", async () => {
    const port = await freePort();
    const counter = new Counter();
    const hold = latch();
    // s3 waits (the first time) while the engine is killed: s1 and s2 were acknowledged by then.
    const { inngest, fn } = latchedThreeSteps(port, counter, hold, { app: "journal", event: "journal/go" });
    const app = await serveApp(inngest, [fn]);
    // The applier held: everything the engine acknowledges stays in its journal only.
    let engine = await startEngineProcess({ databaseUrl: t.db.url, port, journalDir: t.dir, env: { INNGEST_ENGINE_JOURNAL_HOLD: "1" } });
    try {
      expect((await fetch(app.url, { method: "PUT" })).status).toBe(200);
      const sent = await fetch(`http://127.0.0.1:${port}/e/local`, { method: "POST", body: JSON.stringify({ name: "journal/go", data: {} }) });
      const { ids } = (await sent.json()) as { ids: string[] };
      await hold.reached; // the SDK runs s3 only once s2's checkpoint was answered
      expect(await count(t.db.url, "SELECT count(*) AS n FROM inngest_local.memos")).toBe(0); // acknowledged from the journal alone
      expect(await count(t.db.url, "SELECT count(*) AS n FROM inngest_local.runs")).toBe(0);
      await kill9(engine);
      hold.open();
      engine = await startEngineProcess({ databaseUrl: t.db.url, port, journalDir: t.dir });
      expect(engine.output.join("")).toMatch(/applied \d+ journaled transitions/);
      const api = async (path: string) => (await fetch(`http://127.0.0.1:${port}${path}`)).json();
      const runs = (await api(`/v0/runs?event_id=${ids[0]}`)) as { data: { run_id: string }[] };
      const runId = runs.data[0]!.run_id;
      const done = await until(
        async () => {
          const r = await api(`/v0/runs/${runId}`);
          return r.status === "completed" ? r : undefined;
        },
        { timeoutMs: 30_000, intervalMs: 50 },
      );
      expect(done.output).toBe(3);
      expect([counter.get("s1"), counter.get("s2"), counter.get("s3")]).toEqual([1, 1, 2]);
      expect(await count(t.db.url, "SELECT count(*) AS n FROM inngest_local.memos WHERE run_id = $1", [runId])).toBe(3);
    } finally {
      await kill9(engine);
      await app.close();
    }
  });
});
