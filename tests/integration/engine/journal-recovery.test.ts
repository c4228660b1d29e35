// What recovery does with journal files it cannot use (local/engine/journal-applier.ts), on the real Postgres: the file
// of a create a crash cut short (with its row: removed with the row; without one: removed once old enough to be no
// create in progress), another database's journal (left alone), and a journal in a format this engine cannot read
// (the start fails loudly, nothing applied, row and file kept).
import { existsSync, readdirSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { beforeAll, describe, expect, it } from "vitest";
import { journalPath, recordLine, recordParts } from "../../../local/engine/journal";
import { Store } from "../../../local/engine/store";
import { useEmptyDatabase } from "../../support/postgres";
import { sql } from "../db/sql";

const ULID = (c: string) => `01JZZZZZZZZZZZZZZZZZZZZZ${c}${c}`;

async function startStore(url: string, dir: string, lines: string[]): Promise<Store> {
  const store = new Store(url, { log: (l) => lines.push(l) });
  await store.migrate();
  try {
    await store.recoverJournals();
    await store.openJournal(dir);
  } catch (err) {
    await store.close();
    throw err;
  }
  return store;
}

async function addRow(url: string, id: string, path: string): Promise<void> {
  await sql(url, "INSERT INTO inngest_local.journals (id, path, applied_seq, created_at) VALUES ($1, $2, 0, 1)", [id, path]);
}

const rows = async (url: string) => (await sql<{ id: string }>(url, "SELECT id FROM inngest_local.journals ORDER BY id")).map((r) => r.id);

describe("journal recovery: files it cannot use", () => {
  const t = useEmptyDatabase({ dirPrefix: "nightshift-journal-recovery-" });
  beforeAll(async () => {
    // The schema, so the test can add journal rows as a crashed engine left them.
    const s = new Store(t.db.url);
    await s.migrate();
    await s.close();
  });

  it("removes what a crash inside create left; leaves another database's journal alone", async () => {
    const old = (Date.now() - 3_600_000) / 1000;
    // (a) A row whose file has no header (the crash hit before it was written).
    const headless = journalPath(t.dir, ULID("A"));
    writeFileSync(headless, Buffer.alloc(1 << 20));
    await addRow(t.db.url, ULID("A"), headless);
    // (b) A row whose file never got its final name (the crash hit inside the atomic create).
    const unfinished = journalPath(t.dir, ULID("B"));
    writeFileSync(`${unfinished}.tmp`, Buffer.alloc(1 << 20));
    await addRow(t.db.url, ULID("B"), unfinished);
    // (c) No row here, no header, an hour old: no engine can ever apply it.
    const leaked = journalPath(t.dir, ULID("C"));
    writeFileSync(leaked, Buffer.alloc(1 << 20));
    utimesSync(leaked, old, old);
    // (d) No row here, no header, just written: maybe another engine's create in progress.
    const young = `${journalPath(t.dir, ULID("D"))}.tmp`;
    writeFileSync(young, Buffer.alloc(1024));
    // (e) No row here, a header, an hour old: another database's journal, with records.
    const foreign = journalPath(t.dir, ULID("E"));
    writeFileSync(foreign, `{"journal":"${ULID("E")}","format":1}\n${recordLine(1, recordParts({ runUpdates: [{ id: "x", status: "running" }] }))}`);
    utimesSync(foreign, old, old);
    // (f) No row here, an hour old, bytes written but no header this engine can read (a newer format's, say): it may
    // hold another database's unapplied transitions, so it is left alone too — only blank starts are removed.
    const unknown = journalPath(t.dir, ULID("G"));
    writeFileSync(unknown, `${"x".repeat(300)}\n${recordLine(1, recordParts({ runUpdates: [{ id: "y", status: "running" }] }))}`);
    utimesSync(unknown, old, old);

    const lines: string[] = [];
    const store = await startStore(t.db.url, t.dir, lines);
    try {
      expect(existsSync(headless)).toBe(false);
      expect(existsSync(`${unfinished}.tmp`)).toBe(false);
      expect(existsSync(leaked)).toBe(false);
      expect(existsSync(young)).toBe(true);
      expect(existsSync(foreign)).toBe(true);
      expect(existsSync(unknown)).toBe(true);
      expect(await rows(t.db.url)).toEqual([store.journalPath!.match(/engine-journal-(.+)\.jsonl$/)![1]]); // only its own
      expect(lines.filter((l) => /left alone/.test(l))).toHaveLength(1); // once, naming what it left
      expect(lines.find((l) => /left alone/.test(l))).toMatch(/3 journal files/);
    } finally {
      await store.close();
    }
    expect(readdirSync(t.dir).sort()).toEqual([`${young.slice(t.dir.length + 1)}`, foreign.slice(t.dir.length + 1), unknown.slice(t.dir.length + 1)].sort());
    rmSync(young);
    rmSync(foreign);
    rmSync(unknown);
  });

  it("refuses a journal in a format it cannot read: the start fails, nothing applied, row and file kept", async () => {
    const id = ULID("F");
    const path = journalPath(t.dir, id);
    const run = { id: "fmt-run", function_id: "f", status: "queued", event_id: "e", event: { name: "x", data: {} }, event_seq: 1, created_at: 1 };
    writeFileSync(path, `{"journal":"${id}","format":2}\n${recordLine(1, recordParts({ runs: [run as never] }))}`);
    await addRow(t.db.url, id, path);
    const lines: string[] = [];
    await expect(startStore(t.db.url, t.dir, lines)).rejects.toThrow(/format 2.*refusing to apply/);
    expect(await rows(t.db.url)).toEqual([id]);
    expect(existsSync(path)).toBe(true);
    expect(await sql(t.db.url, "SELECT id FROM inngest_local.runs")).toEqual([]);
    await sql(t.db.url, "DELETE FROM inngest_local.journals WHERE id = $1", [id]);
    rmSync(path);
  });
});
