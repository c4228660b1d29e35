// The engine's single-writer lock through a bad night (local/engine/engine-lock.ts; docs/engine.md, "The single-writer
// lock"), on the real Postgres: the lock's session terminated (pg_terminate_backend) -> the engine re-takes it and a
// run in flight completes with no step re-run; another engine takes the lock first -> the first stops writing, says so
// and exits non-zero, and the winner finishes the run from the loser's journal (nothing it acknowledged is lost); a
// full Postgres restart with a run in flight -> the run completes; the store closed while Postgres is down keeps its
// journal and the next start applies it.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startEngine, type Engine } from "../../../local/engine";
import { Store } from "../../../local/engine/store";
import { startPostgres, type RunningPostgres } from "../../../local/db/embedded-postgres";
import { freePort } from "../../../local/ports";
import { Counter, latch, latchedThreeSteps, queuedRun, runFor, runReaches, serveApp, until } from "../../support/engine-harness";
import { kill9, startEngineProcess } from "../../support/engine-process";
import { createTestDatabase, useEmptyDatabase } from "../../support/postgres";
import { sql } from "../db/sql";

/** The session holding the engine's lock in this database (pg_advisory_lock(bigint): objid = the key's low 32 bits). */
const LOCK_HOLDER = `SELECT l.pid FROM pg_locks l JOIN pg_database d ON d.oid = l.database
  WHERE d.datname = current_database() AND l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
    AND l.objid = (hashtext('inngest_local.engine')::bigint & 4294967295)::oid`;

async function lockHolder(url: string): Promise<number | undefined> {
  const rows = await sql<{ pid: number }>(url, LOCK_HOLDER);
  return rows[0]?.pid;
}

const steps = (c: Counter) => [c.get("s1"), c.get("s2"), c.get("s3")];

describe("engine lock on the test run's Postgres", () => {
  // A database of its own for each test: the counts below are of the whole database.
  const t = useEmptyDatabase({ dirPrefix: "nightshift-lock-", each: true });

  it("the lock's session terminated: the engine re-takes the lock and the run in flight completes, no step re-run", async () => {
    const port = await freePort();
    const counter = new Counter();
    const hold = latch();
    const { inngest, fn } = latchedThreeSteps(port, counter, hold, { app: "lock", event: "lock/go", retries: 2 });
    const app = await serveApp(inngest, [fn]);
    const lines: string[] = [];
    let fatal: Error | undefined;
    const engine = await startEngine({ databaseUrl: t.db.url, port, journalDir: t.dir, log: (l) => lines.push(l), onFatal: (e) => (fatal = e) });
    try {
      await engine.sync(app.url);
      const [eventId] = await engine.send({ name: "lock/go", data: {} });
      await hold.reached;
      const before = await until(() => lockHolder(t.db.url), { message: "no session holds the engine lock" });
      await sql(t.db.url, "SELECT pg_terminate_backend($1, 30000)", [before]);
      const after = await until(async () => {
        const pid = await lockHolder(t.db.url);
        return pid !== undefined && pid !== before ? pid : undefined;
      }, { timeoutMs: 30_000, message: "the engine never took its lock again" });
      expect(after).not.toBe(before);
      await until(() => lines.some((l) => l.includes("held again")), { message: "no line says the lock is held again" });
      hold.open();
      const run = await runReaches(engine, await runFor(engine, eventId!, "lock-three-steps"), "completed", { timeoutMs: 60_000 });
      expect(run.output).toBe(3);
      expect(steps(counter)).toEqual([1, 1, 1]);
      expect(fatal).toBeUndefined();
      expect(lines.filter((l) => l.includes("ENGINE ERROR"))).toEqual([]);
    } finally {
      hold.open();
      await engine.stop();
      await app.close();
    }
  }, 120_000);

  it("another engine takes the lock first: the first stops writing, says so and exits non-zero; the winner applies its journal and finishes the run", async () => {
    const port = await freePort();
    const counter = new Counter();
    const hold = latch();
    const { inngest, fn } = latchedThreeSteps(port, counter, hold, { app: "lock", event: "lock/go", retries: 2 });
    const app = await serveApp(inngest, [fn]);
    // The loser's applier held: what it acknowledges (s1, s2) is in its journal only, so only the winner's recovery
    // can give it to Postgres.
    let loser = await startEngineProcess({ databaseUrl: t.db.url, port, journalDir: t.dir, env: { INNGEST_ENGINE_JOURNAL_HOLD: "1" } });
    const thief = new pg.Client({ connectionString: t.db.url });
    thief.on("error", () => {});
    let winner: Engine | undefined;
    try {
      expect((await fetch(app.url, { method: "PUT" })).status).toBe(200);
      const sent = await fetch(`http://127.0.0.1:${port}/e/local`, { method: "POST", body: JSON.stringify({ name: "lock/go", data: {} }) });
      const { ids } = (await sent.json()) as { ids: string[] };
      await hold.reached; // s1 and s2 acknowledged, from the journal alone
      expect(Number((await sql<{ n: string }>(t.db.url, "SELECT count(*) AS n FROM inngest_local.memos"))[0]!.n)).toBe(0);
      const exited = new Promise<number | null>((r) => loser.proc.once("exit", (code) => r(code)));

      // Another session takes the lock the moment the engine's session is gone: it ends that session and spins on
      // the lock inside Postgres, so it sees the lock free before the engine has even reconnected (if the engine ever
      // re-took it first, its new session is ended again, until the other one has it).
      await thief.connect();
      const thiefPid = (await thief.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]!.pid;
      await until(async () => {
        const pid = await lockHolder(t.db.url);
        if (pid === thiefPid) return true;
        if (pid === undefined) return false;
        await thief.query(`DO $$ DECLARE deadline timestamptz := clock_timestamp() + interval '5 seconds'; BEGIN
          PERFORM pg_terminate_backend(${Number(pid)});
          WHILE clock_timestamp() < deadline LOOP
            EXIT WHEN pg_try_advisory_lock(hashtext('inngest_local.engine'));
          END LOOP;
        END $$`);
        return (await lockHolder(t.db.url)) === thiefPid;
      }, { timeoutMs: 60_000, message: "the other session never took the lock" });

      await until(() => loser.output.join("").includes("lost its single-writer lock"), { timeoutMs: 30_000, message: "the engine never said it lost its lock" });
      expect(loser.output.join("")).toMatch(/ENGINE ERROR: this engine lost its single-writer lock/);
      hold.open(); // s3's answer goes to an engine that stopped: nothing of it may be written
      expect(await exited).toBe(1);
      expect(Number((await sql<{ n: string }>(t.db.url, "SELECT count(*) AS n FROM inngest_local.memos"))[0]!.n)).toBe(0);
      expect(Number((await sql<{ n: string }>(t.db.url, "SELECT count(*) AS n FROM inngest_local.journals"))[0]!.n)).toBe(1); // kept

      // The other session goes; a second engine starts, applies the loser's journal, and finishes the run.
      await thief.end();
      const lines: string[] = [];
      winner = await startEngine({ databaseUrl: t.db.url, port, journalDir: t.dir, log: (l) => lines.push(l) });
      expect(lines.some((l) => /applied [1-9]\d* journaled transitions/.test(l))).toBe(true);
      const run = await runReaches(winner, await runFor(winner, ids[0]!, "lock-three-steps"), "completed", { timeoutMs: 60_000 });
      expect(run.output).toBe(3);
      expect(steps(counter)).toEqual([1, 1, 2]); // s3 was never acknowledged: it runs again; s1 and s2 never do
    } finally {
      hold.open();
      await thief.end().catch(() => {});
      await kill9(loser);
      await winner?.stop();
      await app.close();
    }
  }, 150_000);
});

describe("engine lock, in process", () => {
  it("an in-process engine that lost its lock to another session stops itself and calls onFatal", async () => {
    const db = await createTestDatabase({ empty: true });
    const lines: string[] = [];
    let fatal: Error | undefined;
    const engine = await startEngine({ databaseUrl: db.url, journalDir: "off", log: (l) => lines.push(l), onFatal: (e) => (fatal = e) });
    const thief = new pg.Client({ connectionString: db.url });
    thief.on("error", () => {});
    try {
      await thief.connect();
      const pid = await until(() => lockHolder(db.url), { message: "no session holds the engine lock" });
      await thief.query(`DO $$ DECLARE deadline timestamptz := clock_timestamp() + interval '5 seconds'; BEGIN
        PERFORM pg_terminate_backend(${Number(pid)});
        WHILE clock_timestamp() < deadline LOOP EXIT WHEN pg_try_advisory_lock(hashtext('inngest_local.engine')); END LOOP;
      END $$`);
      await until(() => fatal, { timeoutMs: 30_000, message: "the engine never stopped itself" });
      expect(fatal!.message).toMatch(/lost its single-writer lock/);
      expect(lines.some((l) => l.startsWith("ENGINE ERROR: this engine lost its single-writer lock"))).toBe(true);
      await expect(fetch(`${engine.url}/v0/runs`)).rejects.toThrow(); // its HTTP server is closed
    } finally {
      await thief.end().catch(() => {});
      await engine.stop();
      await db.drop().catch(() => {});
    }
  }, 120_000);
});

describe("engine lock, in the store", () => {
  const t = useEmptyDatabase({ each: true });

  const run = (id: string) => queuedRun(id);

  it("while the lock is being re-taken nothing is acknowledged; once another session holds it, transitions are refused with a clear error", async () => {
    const admin = new pg.Client({ connectionString: t.db.url.replace(/\/[^/]*$/, "/postgres") });
    admin.on("error", () => {});
    await admin.connect();
    const lines: string[] = [];
    let lost: Error | undefined;
    const store = new Store(t.db.url, { log: (l) => lines.push(l), onLockLost: (e) => (lost = e) });
    const thief = new pg.Client({ connectionString: t.db.url });
    thief.on("error", () => {});
    try {
      await store.migrate();
      await store.acquireEngineLock();
      await store.apply({ runs: [run("before")] });
      // The lock's session ends while Postgres takes no connections to this database: the lock cannot be re-taken.
      await admin.query(`ALTER DATABASE ${t.db.name} ALLOW_CONNECTIONS false`);
      const holder = `SELECT l.pid FROM pg_locks l JOIN pg_database d ON d.oid = l.database WHERE d.datname = $1
        AND l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 AND l.objid = (hashtext('inngest_local.engine')::bigint & 4294967295)::oid`;
      const pid = (await admin.query<{ pid: number }>(holder, [t.db.name])).rows[0]!.pid;
      await admin.query("SELECT pg_terminate_backend($1, 30000)", [pid]);
      await until(() => lines.some((l) => l.includes("cannot reach Postgres to take the engine's lock again")), { timeoutMs: 30_000, message: "the store never tried to re-take its lock" });
      let acked = false;
      const pending = store.apply({ runs: [run("during")] }).then(() => (acked = true));
      await new Promise((r) => setTimeout(r, 100));
      expect(acked).toBe(false); // it cannot be: the lock is not held, and Postgres refuses every connection
      await admin.query(`ALTER DATABASE ${t.db.name} ALLOW_CONNECTIONS true`);
      await pending; // re-taken: acknowledged now
      expect(lines.some((l) => l.includes("held again"))).toBe(true);

      // Now another session takes it the moment the store's session ends: the store has lost the database.
      await thief.connect();
      const again = (await admin.query<{ pid: number }>(holder, [t.db.name])).rows[0]!.pid;
      await thief.query(`DO $$ DECLARE deadline timestamptz := clock_timestamp() + interval '5 seconds'; BEGIN
        PERFORM pg_terminate_backend(${Number(again)});
        WHILE clock_timestamp() < deadline LOOP EXIT WHEN pg_try_advisory_lock(hashtext('inngest_local.engine')); END LOOP;
      END $$`);
      await until(() => lost, { timeoutMs: 30_000, message: "the store never learned it lost its lock" });
      expect(lost!.message).toMatch(/lost its single-writer lock .* to another engine and stopped writing/);
      await expect(store.apply({ runs: [run("after")] })).rejects.toThrow(/lost its single-writer lock/);
      expect(lines.some((l) => l.startsWith("ENGINE ERROR: this engine lost its single-writer lock"))).toBe(true);
      expect((await sql<{ id: string }>(t.db.url, "SELECT id FROM inngest_local.runs ORDER BY id")).map((r) => r.id)).toEqual(["before", "during"]);
    } finally {
      await admin.query(`ALTER DATABASE ${t.db.name} ALLOW_CONNECTIONS true`).catch(() => {});
      await admin.end();
      await thief.end().catch(() => {});
      await store.close();
    }
  }, 120_000);
});

describe("engine lock, in the store, with a journal", () => {
  const t = useEmptyDatabase({ dirPrefix: "nightshift-lock-journal-", each: true });

  const run = (id: string, data: Record<string, unknown> = {}) => queuedRun(id, { data });

  it("a batch waiting behind a transition that goes to Postgres directly acknowledges nothing once the lock's session ended meanwhile", async () => {
    const admin = new pg.Client({ connectionString: t.db.url.replace(/\/[^/]*$/, "/postgres") });
    admin.on("error", () => {});
    await admin.connect();
    // Connected before connections are refused below: the test's own eyes on the database meanwhile.
    const watcher = new pg.Client({ connectionString: t.db.url });
    watcher.on("error", () => {});
    const lines: string[] = [];
    const store = new Store(t.db.url, { log: (l) => lines.push(l) });
    try {
      await store.migrate();
      await store.acquireEngineLock();
      await store.openJournal(t.dir);
      await watcher.connect();
      await store.listRuns({}); // a pooled connection, idle and open, for the applier once new ones are refused
      store.holdJournal(true);
      await store.apply({ runs: [run("t0")] }); // journaled, not applied (held)
      // t1 goes to Postgres directly (its data has the text \u0000, which the journal never takes) once t0 is applied;
      // t2, in the same batch, waits behind it.
      const settled: string[] = [];
      const t1 = store.apply({ runs: [run("t1", { note: "\\u0000" })] }).then(() => settled.push("t1"), () => settled.push("t1 refused"));
      const t2 = store.apply({ runs: [run("t2")] }).then(() => settled.push("t2"), () => settled.push("t2 refused"));
      await new Promise((r) => setImmediate(r));
      await new Promise((r) => setImmediate(r));
      // The lock's session ends, and Postgres takes no new connection to this database: the lock cannot be re-taken.
      await admin.query(`ALTER DATABASE ${t.db.name} ALLOW_CONNECTIONS false`);
      const pid = (await watcher.query<{ pid: number }>(LOCK_HOLDER)).rows[0]!.pid;
      await admin.query("SELECT pg_terminate_backend($1, 30000)", [pid]);
      await until(() => lines.some((l) => l.includes("cannot reach Postgres to take the engine's lock again")), { timeoutMs: 30_000, message: "the store never tried to re-take its lock" });
      store.holdJournal(false); // t0 reaches Postgres through the open pooled connection
      await until(async () => (await watcher.query("SELECT 1 FROM inngest_local.runs WHERE id = 't0'")).rowCount === 1, { timeoutMs: 30_000, message: "t0 never applied" });
      await new Promise((r) => setTimeout(r, 300));
      expect(settled).toEqual([]); // neither t1 nor t2: the lock is not held
      expect((await watcher.query("SELECT id FROM inngest_local.runs ORDER BY id")).rows.map((r) => r.id)).toEqual(["t0"]);
      await admin.query(`ALTER DATABASE ${t.db.name} ALLOW_CONNECTIONS true`);
      await Promise.all([t1, t2]); // the lock re-taken: both go through, in order
      expect(settled).toEqual(["t1", "t2"]);
      await until(async () => (await watcher.query("SELECT 1 FROM inngest_local.runs WHERE id = 't2'")).rowCount === 1, { timeoutMs: 30_000, message: "t2 never applied" });
    } finally {
      await admin.query(`ALTER DATABASE ${t.db.name} ALLOW_CONNECTIONS true`).catch(() => {});
      await admin.end();
      await watcher.end().catch(() => {});
      await store.close();
    }
  }, 120_000);
});

describe("engine across a Postgres restart (a server of its own)", () => {
  let server: RunningPostgres;
  let dataDir: string;
  let dir: string;
  let port: number;
  const url = () => server.url("lockdb");

  const restart = async (between?: () => Promise<void>) => {
    await server.stop();
    await between?.();
    server = await startPostgres({ dataDir, port, persistent: true });
  };

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), "nightshift-lock-pg-"));
    dir = mkdtempSync(join(tmpdir(), "nightshift-lock-journal-"));
    port = await freePort();
    server = await startPostgres({ dataDir, port, persistent: true });
    await sql(server.url(), "CREATE DATABASE lockdb");
  });

  afterAll(async () => {
    await server?.stop().catch(() => {});
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  });

  it("a full restart with a run in flight: the engine takes its lock again and the run completes, no step re-run", async () => {
    const enginePort = await freePort();
    const counter = new Counter();
    const hold = latch();
    const { inngest, fn } = latchedThreeSteps(enginePort, counter, hold, { app: "lock", event: "lock/go", retries: 2 });
    const app = await serveApp(inngest, [fn]);
    const lines: string[] = [];
    let fatal: Error | undefined;
    const engine = await startEngine({ databaseUrl: url(), port: enginePort, journalDir: dir, log: (l) => lines.push(l), onFatal: (e) => (fatal = e) });
    try {
      await engine.sync(app.url);
      const [eventId] = await engine.send({ name: "lock/go", data: {} });
      const runId = await runFor(engine, eventId!, "lock-three-steps");
      await hold.reached;
      await restart();
      await until(() => lines.some((l) => l.includes("held again")), { timeoutMs: 60_000, message: "the engine never took its lock again" });
      hold.open();
      const run = await runReaches(engine, runId, "completed", { timeoutMs: 60_000 });
      expect(run.output).toBe(3);
      expect(steps(counter)).toEqual([1, 1, 1]);
      expect(fatal).toBeUndefined();
      expect(await lockHolder(url())).toBeDefined();
    } finally {
      hold.open();
      await engine.stop();
      await app.close();
    }
  }, 150_000);

  it("the store closed while Postgres is stopped keeps its journal; the next start applies it", async () => {
    const row = (id: string) => queuedRun(id);
    const lines: string[] = [];
    const store = new Store(url(), { log: (l) => lines.push(l), readWaitMs: 2_000 });
    await store.migrate();
    await store.acquireEngineLock();
    await store.recoverJournals();
    await store.openJournal(dir);
    store.holdJournal(true);
    await Promise.all(["down-1", "down-2", "down-3"].map((id) => store.apply({ runs: [row(id)] })));
    const path = store.journalPath!;
    await restart(async () => {
      store.holdJournal(false); // the applier meets a Postgres that is not there
      await store.close(); // bounded: it gives up after its wait, keeps the journal, and the applier stops
    });
    expect(lines.some((l) => l.includes(`engine journal ${path} kept`))).toBe(true);
    const next = new Store(url(), { log: (l) => lines.push(l) });
    try {
      await next.migrate();
      await next.acquireEngineLock();
      await next.recoverJournals();
      expect(lines.some((l) => /applied 3 journaled transitions/.test(l))).toBe(true);
      expect((await next.listRuns({ limit: 10 })).map((r) => r.id).filter((id) => id.startsWith("down-")).sort()).toEqual(["down-1", "down-2", "down-3"]);
    } finally {
      await next.close();
    }
  }, 150_000);
});
