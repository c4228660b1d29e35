// The journal file's header and format version (local/engine/journal.ts): a file this engine cannot read is refused
// loudly, never misread; a create is atomic, so a crash inside it never leaves a journal-named file without a header.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { JOURNAL_FORMAT, JournalFile, JournalFormatError, headerId, journalPath, readJournal, recordLine, recordParts } from "../../local/engine/journal";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "journal-format-"));
  dirs.push(dir);
  return dir;
}

const line = (seq: number, runId: string) => recordLine(seq, recordParts({ runUpdates: [{ id: runId, status: "running" }] }));

describe("engine journal format", () => {
  it("writes its format in the header, under the final name only once complete", () => {
    const dir = tempDir();
    const f = JournalFile.create(dir, "j-fmt");
    f.close();
    expect(readdirSync(dir)).toEqual(["engine-journal-j-fmt.jsonl"]); // no .tmp left behind
    const first = readFileSync(f.path, "utf8").split("\n")[0]!;
    expect(JSON.parse(first)).toEqual({ journal: "j-fmt", format: JOURNAL_FORMAT });
    expect(headerId(f.path)).toBe("j-fmt");
  });

  it("reads a file written before the format field (format 1, no field)", () => {
    const dir = tempDir();
    const path = journalPath(dir, "j-old");
    writeFileSync(path, `{"journal":"j-old"}\n${line(1, "run-a")}${line(2, "run-b")}`);
    expect(readJournal(path, "j-old", 0).records.map((r) => r.seq)).toEqual([1, 2]);
  });

  it("refuses a newer format loudly instead of reading it", () => {
    const dir = tempDir();
    const path = journalPath(dir, "j-new");
    writeFileSync(path, `{"journal":"j-new","format":2}\n${line(1, "run-a")}`);
    expect(() => readJournal(path, "j-new", 0)).toThrow(JournalFormatError);
    expect(() => readJournal(path, "j-new", 0)).toThrow(/format 2.*refusing to apply/);
  });

  it("refuses the first format (lines without a checksum) instead of taking its first line for a torn write", () => {
    const dir = tempDir();
    const path = journalPath(dir, "j-v0");
    writeFileSync(path, `{"journal":"j-v0"}\n{"seq":1,"doc":{"runs":[{"id":"r1"}]}}\n{"seq":2,"doc":{"runs":[{"id":"r2"}]}}\n`);
    expect(() => readJournal(path, "j-v0", 0)).toThrow(/first format/);
    expect(() => readJournal(path, "j-v0", 1)).toThrow(/first format/); // seq 2 is not in Postgres yet
    // Everything in it already applied (a session-7 engine killed after its applier caught up): nothing to misapply.
    expect(readJournal(path, "j-v0", 2)).toEqual({ foreign: false, headless: false, records: [], torn: false });
    // A torn line of that shape (cut short) is still just a torn write.
    writeFileSync(path, `{"journal":"j-v0"}\n${line(1, "run-a")}{"seq":2,"doc":{"runs":[{"id":"r`);
    const r = readJournal(path, "j-v0", 0);
    expect(r.records.map((x) => x.seq)).toEqual([1]);
    expect(r.torn).toBe(true);
  });

  it("tells a file without a header (a create cut short) from another journal's file", () => {
    const dir = tempDir();
    const path = journalPath(dir, "j-cut");
    writeFileSync(path, Buffer.alloc(4096)); // the crash hit before the header was written
    expect(readJournal(path, "j-cut", 0)).toMatchObject({ headless: true, foreign: false, records: [] });
    expect(headerId(path)).toBeUndefined();
    writeFileSync(path, `{"journal":"someone-else"}\n`);
    expect(readJournal(path, "j-cut", 0)).toMatchObject({ headless: false, foreign: true, records: [] });
    expect(existsSync(path)).toBe(true);
  });
});
