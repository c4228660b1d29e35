// The journal through faults (docs/engine.md, "Durability" and "The single-writer lock"), on real parts: a real full
// disk (a tmpfs of its own, filled) under the journal and under Postgres, the journal's directory removed, and the
// lock's last window — an engine that lost its lock but has not noticed yet, writing after the winner read its journal.
// The rules: nothing is acknowledged that is not durable, nothing acknowledged is lost, one line says what is wrong,
// and the engine carries on by itself once the fault is gone. The tmpfs tests need root (mount); without it they
// skip, naming the reason.
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { describe, expect, it } from "vitest";
import { Store } from "../../../local/engine/store";
import { LOCK_HOLDER, queuedRun, until } from "../../support/engine-harness";
import { useEmptyDatabase } from "../../support/postgres";
import { startTcpProxy } from "../../support/tcp-proxy";
import { mountTinyDisk } from "../../support/tiny-disk";
import { sql } from "../db/sql";

const run = (id: string, data: Record<string, unknown> = {}) => queuedRun(id, { data });

async function runIds(url: string): Promise<string[]> {
  return (await sql<{ id: string }>(url, "SELECT id FROM inngest_local.runs ORDER BY id")).map((r) => r.id);
}

async function openStore(url: string, dir: string, lines: string[], extra: Partial<ConstructorParameters<typeof Store>[1]> = {}): Promise<Store> {
  const store = new Store(url, { log: (l) => lines.push(l), reopenMs: 100, ...extra });
  await store.migrate();
  await store.acquireEngineLock();
  await store.recoverJournals();
  await store.openJournal(dir);
  return store;
}

/** Settles into `state` ("acked" / "refused: …") so a test can look without awaiting. */
function watch(p: Promise<void>): { state: string | undefined; done: Promise<void> } {
  const w: { state: string | undefined; done: Promise<void> } = { state: undefined, done: Promise.resolve() };
  w.done = p.then(
    () => void (w.state = "acked"),
    (err: unknown) => void (w.state = `refused: ${err instanceof Error ? err.message : String(err)}`),
  );
  return w;
}

const settle = () => new Promise((r) => setTimeout(r, 200));

describe("journal faults: a full disk", () => {
  const t = useEmptyDatabase({ each: true });

  it("the journal's disk full while it must grow: nothing more is acknowledged, one line says so, and it carries on once Postgres caught up", async (ctx) => {
    const disk = mountTinyDisk(2048);
    if ("skip" in disk) {
      console.warn(`SKIPPED (journal disk full): ${disk.skip}`);
      return ctx.skip(disk.skip);
    }
    const lines: string[] = [];
    let store: Store | undefined;
    try {
      store = await openStore(t.db.url, disk.dir, lines);
      const path = store.journalPath;
      disk.fill(); // the journal has its preallocated megabyte; nothing more
      store.holdJournal(true); // Postgres lags: what is acknowledged stays in the journal
      const big = "x".repeat(150_000);
      const acked: string[] = [];
      let pending: { state: string | undefined; done: Promise<void> } | undefined;
      for (let i = 0; i < 12 && !pending; i++) {
        const w = watch(store.apply({ runs: [run(`r${String(i).padStart(2, "0")}`, { big })] }));
        // Either it is acknowledged, or the store says the disk is full (this write is the one that met it).
        await until(() => w.state ?? lines.some((l) => l.includes("disk is full")), { timeoutMs: 30_000, message: "neither acknowledged nor full" });
        if (w.state === "acked") acked.push(`r${String(i).padStart(2, "0")}`);
        else pending = w;
      }
      expect(acked.length).toBeGreaterThan(3); // the megabyte held some
      expect(pending, "every write fitted: the disk never filled").toBeDefined();
      await settle();
      expect(pending!.state).toBeUndefined(); // not on disk, so not acknowledged — and not refused either: it waits
      expect(lines.filter((l) => l.includes("disk is full"))).toHaveLength(1);
      expect(lines.filter((l) => l.includes("ENGINE ERROR"))).toEqual([]);

      store.holdJournal(false); // Postgres takes what the journal holds; the journal is rewound; the write goes in
      await pending!.done;
      expect(pending!.state).toBe("acked");
      await store.apply({ runs: [run("z-after")] });
      expect(store.journalPath).toBe(path); // still the journal, not a fallback
      expect(lines.some((l) => l.includes("room again"))).toBe(true);
      expect(lines.filter((l) => l.includes("disk is full"))).toHaveLength(1); // one line, not a flood
      await store.close();
      store = undefined;
      const ids = await runIds(t.db.url);
      expect(ids).toEqual([...acked, `r${String(acked.length).padStart(2, "0")}`, "z-after"]);
    } finally {
      await store?.close().catch(() => {});
      disk.unmount();
    }
  }, 120_000);

  it("no room for a journal at start: the store commits to Postgres directly, says so once, and opens a journal by itself once there is room", async (ctx) => {
    const disk = mountTinyDisk(512); // less than the journal's megabyte
    if ("skip" in disk) {
      console.warn(`SKIPPED (no room at start): ${disk.skip}`);
      return ctx.skip(disk.skip);
    }
    const lines: string[] = [];
    let store: Store | undefined;
    try {
      store = await openStore(t.db.url, join(disk.dir, "journal"), lines);
      expect(store.journalPath).toBeUndefined();
      expect(lines.filter((l) => l.includes("no room for the engine's journal"))).toHaveLength(1);
      await store.apply({ runs: [run("direct")] });
      expect(await runIds(t.db.url)).toEqual(["direct"]); // durable in Postgres before it was acknowledged
      // Room again (the disk remounted bigger, as an operator would free space): the next transitions open a journal.
      execFileSync("mount", ["-o", "remount,size=4096k", disk.dir]);
      let i = 0;
      await until(async () => {
        await store!.apply({ runs: [run(`later${i++}`)] });
        return store!.journalPath;
      }, { timeoutMs: 30_000, message: "the store never opened a journal once there was room" });
      expect(existsSync(store.journalPath!)).toBe(true);
      expect(lines.some((l) => l.includes("writing to a fresh journal again"))).toBe(true);
      await store.close();
      store = undefined;
      expect((await runIds(t.db.url)).length).toBe(1 + i);
    } finally {
      await store?.close().catch(() => {});
      disk.unmount();
    }
  }, 120_000);

  it("Postgres's disk full (53100): the journal goes on acknowledging, the applier retries with one line, nothing is lost, and it catches up once there is room", async (ctx) => {
    const disk = mountTinyDisk(1024);
    if ("skip" in disk) {
      console.warn(`SKIPPED (Postgres disk full): ${disk.skip}`);
      return ctx.skip(disk.skip);
    }
    const space = `ns_full_${t.db.name}`;
    const admin = t.db.url;
    const lines: string[] = [];
    let store: Store | undefined;
    const journalDir = join(disk.dir, "..", `${t.db.name}-journal`);
    try {
      // The runs table on a tablespace of its own, on the tiny disk (the server runs as the OS user `postgres`).
      const loc = join(disk.dir, "pg");
      mkdirSync(loc);
      execFileSync("chown", ["postgres", loc]);
      await sql(admin, `CREATE TABLESPACE ${space} LOCATION '${loc}'`);
      store = await openStore(t.db.url, journalDir, lines);
      await sql(admin, `ALTER TABLE inngest_local.runs SET TABLESPACE ${space}`);
      await store.apply({ runs: [run("a-before")] });
      await until(async () => (await runIds(t.db.url)).includes("a-before"), { message: "a-before never applied" });
      disk.fill();
      // Rows enough to need new pages of the table: Postgres cannot extend its file.
      const ids = Array.from({ length: 40 }, (_, i) => `b${String(i).padStart(2, "0")}`);
      // Random text (no compression) of ~2 kB a row: a few rows to a page.
      for (const id of ids) await store.apply({ runs: [run(id, { big: randomBytes(1_500).toString("base64") })] }); // each acknowledged by the journal
      await until(() => lines.some((l) => /Postgres unavailable .*(No space left|could not extend)/.test(l)), {
        timeoutMs: 30_000,
        message: "the applier never said Postgres is out of space",
      });
      expect((await runIds(t.db.url)).filter((id) => id.startsWith("b")).length).toBeLessThan(ids.length);
      await settle();
      expect(lines.filter((l) => l.includes("Postgres unavailable"))).toHaveLength(1); // one line while it retries
      disk.free(); // room again: the applier catches up by itself
      await until(async () => (await runIds(t.db.url)).length === ids.length + 1, { timeoutMs: 60_000, message: "the applier never caught up" });
      expect(lines.some((l) => l.includes("Postgres is back"))).toBe(true);
      expect(lines.filter((l) => /SKIPPED|rejected/.test(l))).toEqual([]);
    } finally {
      await store?.close().catch(() => {});
      await t.db.drop().catch(() => {});
      await sql(admin.replace(/\/[^/]*$/, "/postgres"), `DROP TABLESPACE IF EXISTS ${space}`).catch(() => {});
      disk.unmount();
      rmSync(journalDir, { recursive: true, force: true });
    }
  }, 120_000);
});

describe("journal faults: its directory removed", () => {
  const t = useEmptyDatabase({ dirPrefix: "nightshift-journal-faults-", each: true });

  it("the journal's directory removed under it: nothing more is acknowledged into the orphaned file; a fresh journal takes over", async () => {
    const lines: string[] = [];
    const dir = join(t.dir, "journal");
    const store = await openStore(t.db.url, dir, lines);
    try {
      store.holdJournal(true);
      await store.apply({ runs: [run("a")] }); // acknowledged, in the journal only
      const old = store.journalPath!;
      rmSync(dir, { recursive: true, force: true });
      const b = watch(store.apply({ runs: [run("b")] }));
      await until(() => lines.some((l) => l.includes("ENGINE ERROR")) || b.state, { timeoutMs: 30_000, message: "the removal was never noticed" });
      // Written to a file no crash recovery can find: it must not be acknowledged from there.
      expect(b.state).toBeUndefined();
      store.holdJournal(false); // a reaches Postgres from memory; the journal is given up and a fresh one opened
      await b.done;
      expect(b.state).toBe("acked");
      expect(store.journalPath).toBeDefined();
      expect(store.journalPath).not.toBe(old);
      expect(existsSync(store.journalPath!)).toBe(true);
      expect(lines.filter((l) => l.includes("ENGINE ERROR"))).toHaveLength(1);
      expect(lines.filter((l) => l.includes("ENGINE ERROR"))[0]).toMatch(/removed from its directory/);
      await store.apply({ runs: [run("c")] });
    } finally {
      await store.close();
    }
    expect(await runIds(t.db.url)).toEqual(["a", "b", "c"]);
  }, 60_000);
});

describe("journal faults: the lock's last window", () => {
  const t = useEmptyDatabase({ dirPrefix: "nightshift-journal-fence-", each: true });

  it("a loser that has not noticed it lost the lock acknowledges nothing it writes after the winner read its journal", async () => {
    const lines: string[] = [];
    let lost: Error | undefined;
    const loser = await openStore(t.db.url, t.dir, lines, { onLockLost: (e) => (lost = e) });
    const winner = new Store(t.db.url, { log: (l) => lines.push(`winner: ${l}`) });
    try {
      loser.holdJournal(true);
      await loser.apply({ runs: [run("before")] }); // acknowledged, in the loser's journal only
      // The winner's start (recovery as every engine runs it once it holds the lock). The loser's lock session is left
      // alive: it stands for a session the server ended whose end has not reached the loser yet.
      await winner.recoverJournals();
      expect(await runIds(t.db.url)).toEqual(["before"]);
      const after = watch(loser.apply({ runs: [run("after")] }));
      await after.done;
      expect(after.state).toMatch(/refused: .*lost its single-writer lock/);
      await until(() => lost, { message: "the loser never learned it lost its lock" });
      expect(lines.some((l) => l.startsWith("ENGINE ERROR: this engine lost its single-writer lock"))).toBe(true);
      await expect(loser.apply({ runs: [run("later")] })).rejects.toThrow(/lost its single-writer lock/);
      // What the loser acknowledged is in Postgres; what it did not, is not.
      expect(await runIds(t.db.url)).toEqual(["before"]);
    } finally {
      await loser.close();
      await winner.close();
    }
  }, 60_000);

  it("a loser whose journal was given up confirms the lock before a fresh journal: its session ended unseen, nothing is acknowledged", async () => {
    // The fence covers a journal that exists when the winner recovers; a fresh one (the old given up: its directory
    // removed) is a file no winner fenced, so the lock is confirmed on its own connection first. The lock's session
    // is ended by the server and the end never reaches the loser (a proxy mutes it); another session takes the lock.
    const u = new URL(t.db.url);
    const proxy = await startTcpProxy(u.hostname, Number(u.port));
    const lines: string[] = [];
    let lost: Error | undefined;
    const dir = join(t.dir, "journal");
    const loser = await openStore(proxy.via(t.db.url), dir, lines, { onLockLost: (e) => (lost = e) });
    const winner = new pg.Client({ connectionString: t.db.url });
    try {
      await loser.apply({ runs: [run("a")] });
      await until(async () => (await runIds(t.db.url)).includes("a"), { message: "a was never applied" });
      const [holder] = await sql<{ pid: number; client_port: number }>(t.db.url, LOCK_HOLDER);
      expect(proxy.muteServerSide(holder!.client_port)).toBe(true);
      await sql(t.db.url, "SELECT pg_terminate_backend($1, 10000)", [holder!.pid]);
      await winner.connect();
      await winner.query("SELECT pg_advisory_lock(hashtext('inngest_local.engine'))");
      rmSync(dir, { recursive: true, force: true });
      const b = watch(loser.apply({ runs: [run("b")] }));
      await b.done;
      expect(b.state).toMatch(/refused: .*lost its single-writer lock/);
      await until(() => lost, { message: "the loser never learned it lost its lock" });
      expect(await runIds(t.db.url)).toEqual(["a"]);
    } finally {
      await loser.close();
      await winner.end().catch(() => {});
      await proxy.close();
    }
  }, 60_000);

  it("a loser whose applier finds its journal taken stops, instead of retrying for good", async () => {
    const lines: string[] = [];
    let lost: Error | undefined;
    const loser = await openStore(t.db.url, t.dir, lines, { onLockLost: (e) => (lost = e) });
    const winner = new Store(t.db.url, { log: () => {} });
    try {
      loser.holdJournal(true);
      await loser.apply({ runs: [run("one")] });
      await winner.recoverJournals(); // applies and retires the loser's journal (row and file)
      loser.holdJournal(false); // the loser's applier now meets a journal that is no longer its own
      await until(() => lost, { timeoutMs: 30_000, message: "the loser's applier never noticed its journal was taken" });
      expect(lines.filter((l) => l.includes("Postgres unavailable"))).toEqual([]);
      expect(await runIds(t.db.url)).toEqual(["one"]);
    } finally {
      await loser.close();
      await winner.close();
    }
  }, 60_000);
});
