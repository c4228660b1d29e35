// The engine journal's file format (local/engine/journal.ts): what recovery reads back after a crash. The case that
// matters is a write cut short after a rewind, which leaves the start of a new line followed by the rest of an older,
// applied line at the same offset: that splice can be valid JSON carrying the new seq and the old content.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { JournalFile, readJournal, recordLine, recordParts } from "../../local/engine/journal";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function journal(id: string): JournalFile {
  const dir = mkdtempSync(join(tmpdir(), "journal-file-"));
  dirs.push(dir);
  return JournalFile.create(dir, id);
}

const line = (seq: number, runId: string, status: string) => recordLine(seq, recordParts({ runUpdates: [{ id: runId, status: status as "running" }] }));

describe("engine journal file", () => {
  it("reads back what was written, in order, after the applied position", () => {
    const f = journal("j-read");
    f.appendSync(Buffer.from(line(1, "run-a", "running") + line(2, "run-b", "running") + line(3, "run-a", "completed")));
    const r = readJournal(f.path, "j-read", 1);
    f.close();
    expect(r.foreign).toBe(false);
    expect(r.torn).toBe(false);
    expect(r.records.map((x) => x.seq)).toEqual([2, 3]);
    expect(JSON.parse(`[${r.records[1]!.parts[0]![1]}]`)).toEqual([{ id: "run-a", status: "completed" }]);
  });

  it("after a rewind, stops at the older lines behind the new ones", () => {
    const f = journal("j-rewind");
    f.appendSync(Buffer.from(line(1, "run-a", "running") + line(2, "run-b", "running") + line(3, "run-c", "running")));
    f.rewind(); // everything applied
    f.appendSync(Buffer.from(line(4, "run-d", "waiting")));
    const r = readJournal(f.path, "j-rewind", 3);
    f.close();
    expect(r.records.map((x) => x.seq)).toEqual([4]);
  });

  it("a write cut short after a rewind never brings an old record back under a new seq", () => {
    const f = journal("j-splice");
    const old = line(12, "01JOLDOLDOLDOLDOLDOLDOLDOL", "running");
    f.appendSync(Buffer.from(old));
    f.rewind();
    const next = line(13, "01JNEWNEWNEWNEWNEWNEWNEWNE", "waiting");
    f.close();
    // The crash kept only the first bytes of the new line (up to the run id's start): the rest is the old line's.
    const cut = next.indexOf("01JNEW");
    expect(next.slice(0, cut).length).toBe(old.indexOf("01JOLD")); // the same layout up to the cut
    const bytes = readFileSync(f.path);
    const header = bytes.indexOf(10) + 1;
    const spliced = next.slice(0, cut) + old.slice(cut);
    bytes.write(spliced, header, "utf8");
    writeFileSync(f.path, bytes);
    // Without a checksum this line is a valid record: seq 13 carrying run 01JOLD…'s old status.
    const parsed = JSON.parse(spliced.trimEnd()) as { seq: number; doc: { runUpdates: { id: string }[] } };
    expect(parsed.seq).toBe(13);
    expect(parsed.doc.runUpdates[0]!.id).toMatch(/^01JOLD/);

    const r = readJournal(f.path, "j-splice", 12);
    expect(r.records).toEqual([]);
    expect(r.torn).toBe(true);
  });

  it("a line whose seq does not follow the previous one ends the records", () => {
    const f = journal("j-gap");
    f.appendSync(Buffer.from(line(1, "run-a", "running") + line(3, "run-b", "running")));
    const r = readJournal(f.path, "j-gap", 0);
    f.close();
    expect(r.records.map((x) => x.seq)).toEqual([1]);
  });
});

describe("engine journal file, past its preallocated megabyte", () => {
  it("grows in zero-filled steps and reads every record back", () => {
    const f = journal("j-grow");
    let text = "";
    for (let seq = 1; seq <= 1200; seq++) text += line(seq, `run-${String(seq).padStart(6, "0")}-${"x".repeat(2000)}`, "running");
    expect(Buffer.byteLength(text)).toBeGreaterThan(2 * (1 << 20)); // three megabytes' worth of growth
    for (let i = 0; i < text.length; i += 300_000) f.appendSync(Buffer.from(text.slice(i, i + 300_000)));
    f.close();
    const size = readFileSync(f.path).length;
    expect(size % (1 << 20)).toBe(0); // grown by whole zero-filled megabytes, never to the last record's end
    const r = readJournal(f.path, "j-grow", 0);
    expect(r.torn).toBe(false);
    expect(r.records.map((x) => x.seq)).toEqual(Array.from({ length: 1200 }, (_, i) => i + 1));
  });
});
