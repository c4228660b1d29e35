// The engine's durable point when a journal directory is configured (docs/engine.md, "The journal"): every
// transition is appended to a file the engine fsyncs itself and is acknowledged then; Store applies the journaled
// transitions to Postgres afterwards, in order, in batches. Waking Postgres for every step costs more than the
// flush itself on this VM (docs/benchmarks.md, session 6); a small write to a file opened O_DSYNC does not.
//
// File format: `engine-journal-<id>.jsonl`, a header line `{"journal":"<id>","format":1}` (files written before the
// format field have none and are format 1 too) then one line per transition,
// `{"seq":N,"crc":C,"doc":{...}}` (the document `inngest_local.apply` takes; C the CRC-32 of the document's text),
// seq increasing by one. The checksum matters after a rewind: a write cut short by a crash (or a power loss that kept
// only some of its sectors) can leave the start of a new line followed by the rest of an older, applied line at the
// same offset, which may still parse as JSON — with the new seq and the old content. The checksum refuses it. The file is zero-filled
// ahead of use (so a write rewrites allocated blocks and the flush needs no metadata commit) and rewound once
// everything in it was applied. A reader therefore stops at the first line that does not parse (a torn write, the
// zeros) or whose seq does not increase (older, applied lines behind a rewind). A file in any other format (a newer
// engine's, or the first one's, whose lines had no checksum) is refused loudly, never read as if it were this one.
import {
  chmodSync,
  closeSync,
  constants,
  fchmodSync,
  fstatSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
import { crc32 } from "node:zlib";
import type { Changes, RunUpdate } from "./store";

/** The journal format this engine writes and reads (the header's `format`; absent in files written before it). */
export const JOURNAL_FORMAT = 1;

/** A journal file in a format this engine cannot read: recovery stops rather than misapply it. */
export class JournalFormatError extends Error {
  constructor(path: string, found: string) {
    super(
      `engine journal ${path} is in ${found}, not format ${JOURNAL_FORMAT} which this engine reads; refusing to apply it ` +
        `(nothing was applied; the file and its row are kept): start the engine version that wrote it to apply it, ` +
        `or delete the file and its row in inngest_local.journals to give up its transitions`,
    );
    this.name = "JournalFormatError";
  }
}

/**
 * The journal file's mode while its engine owns it. An engine that recovers the journal (the lock's winner, or the
 * next start) first takes the write permission away (fenceJournal): the writer checks the mode after each write and
 * acknowledges nothing once it changed (docs/engine.md, "The single-writer lock").
 */
const OWNED_MODE = 0o600;
const FENCED_MODE = 0o400;

/** The journal's disk cannot hold another megabyte: the write that needed it was not made (nothing of it is on disk). */
export class JournalFullError extends Error {
  constructor(
    readonly reason: NodeJS.ErrnoException,
    readonly needed: number,
  ) {
    super(`the journal cannot grow (${reason.code ?? reason.message}): its disk is full`);
    this.name = "JournalFullError";
  }
}

/** What the writer finds after a write: its file still its own, taken by another engine, or unlinked from its directory. */
export type JournalState = "ok" | "fenced" | "removed";

/**
 * Fences a journal before reading it (recovery): from now on its writer, if one is still running unaware that it lost
 * the lock, acknowledges nothing more (JournalFile.state). Returns why it could not, if it could not.
 */
export function fenceJournal(path: string): string | undefined {
  try {
    chmodSync(path, FENCED_MODE);
    return undefined;
  } catch (err) {
    // Gone (retired meanwhile), or a file system that refuses modes (read-only: nobody writes there either).
    return (err as NodeJS.ErrnoException).code === "ENOENT" ? undefined : (err as Error).message;
  }
}

/**
 * Sets a new journal's mode (whatever the umask: the mode is the fence's flag) and finds out whether this file system
 * keeps modes at all — a chmod to the fenced mode must show in fstat — so that where it does not (a writable file that
 * always reads 0666, a chmod silently ignored, or refused with EPERM), a healthy engine never takes its own file for
 * fenced. There the fence is off for that journal (docs/engine.md, "The single-writer lock").
 */
function probeFence(fd: number): { ownedMode: number; fenceable: boolean } {
  const mode = () => fstatSync(fd).mode & 0o777;
  try {
    fchmodSync(fd, FENCED_MODE);
    const fenced = mode();
    fchmodSync(fd, OWNED_MODE);
    const owned = mode();
    return { ownedMode: owned, fenceable: fenced === FENCED_MODE && owned === OWNED_MODE };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== "EPERM" && code !== "ENOTSUP" && code !== "EOPNOTSUPP" && code !== "EINVAL") throw err;
    return { ownedMode: mode(), fenceable: false };
  }
}

/** Zero-filled ahead of the writes; while Postgres lags behind by more, the file grows by this much at a time. */
const PREALLOC_BYTES = 1 << 20;
let zeros: Buffer | undefined;

/** The keys of a transition's document, in the order `inngest_local.apply` reads them. */
const KEYS = ["events", "processed", "runs", "runUpdates", "memos", "history", "delWork", "addWork"] as const;

/** One journaled transition, serialised once: its document's arrays as JSON text without their brackets. */
export interface JournalRecord {
  seq: number;
  parts: [key: string, inner: string][];
}

/** The arrays of a transition as JSON text (a snapshot: the engine's live objects change after the ack). */
export function recordParts(changes: Changes): [string, string][] {
  const parts: [string, string][] = [];
  for (const k of KEYS) {
    const v = changes[k];
    if (Array.isArray(v) && v.length) parts.push([k, JSON.stringify(v).slice(1, -1)]);
  }
  return parts;
}

export function recordLine(seq: number, parts: [string, string][]): string {
  const doc = `{${parts.map(([k, inner]) => `"${k}":[${inner}]`).join(",")}}`;
  return `{"seq":${seq},"crc":${crc32(doc)},"doc":${doc}}\n`;
}

const LINE_HEAD = /^\{"seq":(\d{1,15}),"crc":(\d{1,10}),"doc":/;
/** The start of a line of the first format, before checksums (this engine's lines, torn or not, start as LINE_HEAD). */
const LEGACY_HEAD = /^\{"seq":\d{1,15},"doc":\{/;

/** A complete line of the first format: `{"seq":N,"doc":{...}}`, no checksum. */
/** The last seq of the first format's lines from `from` on, while each seq follows the one before by one. */
function legacyLastSeq(lines: string[], from: number): number {
  let last = 0;
  for (let i = from; i < lines.length && isLegacyLine(lines[i]!); i++) {
    const seq = Number((JSON.parse(lines[i]!) as { seq: unknown }).seq);
    if (!Number.isSafeInteger(seq) || seq <= 0 || (last > 0 && seq !== last + 1)) break;
    last = seq;
  }
  return last;
}

function isLegacyLine(line: string): boolean {
  if (!LEGACY_HEAD.test(line)) return false;
  try {
    const v = JSON.parse(line) as { doc?: unknown };
    return typeof v.doc === "object" && v.doc !== null;
  } catch {
    return false; // cut short: a torn write, treated as one
  }
}

/**
 * JSON that Postgres' jsonb refuses whatever the state: the escape `\u0000` and lone UTF-16 surrogates (which
 * JSON.stringify writes as `\ud8xx`..`\udfxx` escapes; a valid pair is written as the character itself). Such a
 * transition is never acknowledged early: it goes to Postgres first, as with the journal off. A false positive (the
 * text `\u0000` inside a string is written `\\u0000`) only takes that slower path.
 */
export function rejectedByPostgres(jsonText: string): boolean {
  return /\\u(?:0000|d[89a-f])/i.test(jsonText);
}

/**
 * One document for several journaled transitions, in seq order, as `inngest_local.apply` takes it, with the
 * journal's new applied position (`first`..`last`) so Postgres records it in the same transaction.
 */
export function mergedDoc(records: JournalRecord[], journal?: { id: string }): string {
  const byKey = new Map<string, string[]>();
  for (const r of records) for (const [k, inner] of r.parts) (byKey.get(k) ?? byKey.set(k, []).get(k)!).push(inner);
  const out: string[] = [];
  for (const [k, inners] of byKey) {
    if (k === "runUpdates") out.push(`"runUpdates":${JSON.stringify(mergeRunUpdates(JSON.parse(`[${inners.join(",")}]`) as RunUpdate[]))}`);
    else out.push(`"${k}":[${inners.join(",")}]`);
  }
  if (journal && records.length) {
    out.push(`"journal":${JSON.stringify({ id: journal.id, first: records[0]!.seq, last: records[records.length - 1]!.seq })}`);
  }
  return `{${out.join(",")}}`;
}

/**
 * One update per run: UPDATE ... FROM applies only one of several rows that match the same run, so updates of one
 * run are merged here, in order, the later value winning.
 */
function mergeRunUpdates(updates: RunUpdate[]): RunUpdate[] {
  if (updates.length < 2) return updates;
  const merged = new Map<string, RunUpdate>();
  for (const u of updates) {
    const m: Record<string, unknown> = { ...merged.get(u.id) };
    for (const [k, v] of Object.entries(u)) if (v !== undefined) m[k] = v;
    merged.set(u.id, m as unknown as RunUpdate);
  }
  return [...merged.values()];
}

export function journalPath(dir: string, id: string): string {
  return join(dir, `engine-journal-${id}.jsonl`);
}

/** The names JournalFile.create uses: the journal (`.jsonl`) and the file being created (`.jsonl.tmp`). */
export const JOURNAL_NAME = /^engine-journal-([0-9A-Za-z]{1,64})\.jsonl(\.tmp)?$/;

/** The open journal file: durable writes at the end, rewound once everything written was applied. */
export class JournalFile {
  private pos: number;
  /** Bytes of the file that exist (zero-filled or written): a write inside them changes no metadata. */
  private allocated = PREALLOC_BYTES;

  private constructor(
    readonly id: string,
    readonly path: string,
    private fd: number,
    private readonly headerLen: number,
    /** The file's mode as created (0600 where the file system keeps modes). */
    private readonly ownedMode: number,
    /** Whether this file system keeps a chmod (it does not on Windows, WSL's /mnt/c without metadata, SMB, FAT):
     * where it does not, a mode cannot carry the fence and state() checks only the link. */
    readonly fenceable: boolean,
  ) {
    this.pos = headerLen;
  }

  /**
   * Creates the file (never an existing one), zero-filled, with its header; file and directory entry durable. It is
   * written under `<name>.tmp` and renamed once complete, so a crash inside create never leaves a journal-named file
   * without its header (only a `.tmp`, which recovery removes with the journal's row).
   */
  static create(dir: string, id: string): JournalFile {
    mkdirSync(dir, { recursive: true });
    const path = journalPath(dir, id);
    const tmp = `${path}.tmp`;
    const header = Buffer.from(`${JSON.stringify({ journal: id, format: JOURNAL_FORMAT })}\n`);
    const init = Buffer.alloc(PREALLOC_BYTES);
    header.copy(init, 0);
    // O_DSYNC: each write returns once its data is on disk — one system call per group commit instead of a write
    // and an fdatasync.
    const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_DSYNC, OWNED_MODE);
    let fence: { ownedMode: number; fenceable: boolean };
    try {
      fence = probeFence(fd);
      writeAll(fd, init, 0);
      fsyncSync(fd);
      renameSync(tmp, path); // never over an existing journal: the id is new (a ulid), its row just inserted
      const dfd = openSync(dir, constants.O_RDONLY);
      try {
        fsyncSync(dfd); // the new name itself
      } finally {
        closeSync(dfd);
      }
    } catch (err) {
      closeSync(fd);
      rmSync(tmp, { force: true });
      rmSync(path, { force: true });
      throw err;
    }
    return new JournalFile(id, path, fd, header.length, fence.ownedMode, fence.fenceable);
  }

  /** Writes `buf` after the last record; returns once it is on disk (blocks the event loop for that long). */
  appendSync(buf: Buffer): void {
    // Past the zero-filled end, every O_DSYNC write that extends the file also commits its new size (measured: ~1.7×
    // the time of a write inside it, and a longer tail); during a burst the applier lags and the file grows, so it
    // grows by a zero-filled megabyte at a time instead, one size change per megabyte.
    while (this.pos + buf.length > this.allocated) {
      zeros ??= Buffer.alloc(PREALLOC_BYTES);
      try {
        writeAll(this.fd, zeros, this.allocated);
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        // A full disk while growing: no record was written (the records go after the zeros), so the write can wait
        // for the applier to catch up and the file to be rewound (Store.journalBatch).
        if (e.code === "ENOSPC" || e.code === "EDQUOT") throw new JournalFullError(e, this.pos + buf.length);
        throw err;
      }
      this.allocated += PREALLOC_BYTES;
    }
    writeAll(this.fd, buf, this.pos);
    this.pos += buf.length;
  }

  /**
   * After a write, before it is acknowledged: "fenced" once another engine recovered this journal (fenceJournal took
   * the write permission away: it read the file after that, so it may not have this write), "removed" once the file is
   * no longer in its directory (its directory deleted: a crash would lose what it holds). One fstat.
   */
  state(): JournalState {
    const st = fstatSync(this.fd);
    if (this.fenceable && (st.mode & 0o777) !== this.ownedMode) return "fenced";
    return st.nlink === 0 ? "removed" : "ok";
  }

  /** Bytes of records since the last rewind. */
  get used(): number {
    return this.pos - this.headerLen;
  }

  /** Everything written was applied: the next record goes right after the header again. */
  rewind(): void {
    this.pos = this.headerLen;
  }

  close(): void {
    if (this.fd < 0) return;
    closeSync(this.fd);
    this.fd = -1;
  }

  /** Closes and deletes the file (everything in it was applied). */
  remove(): void {
    this.close();
    rmSync(this.path, { force: true });
  }
}

function writeAll(fd: number, buf: Buffer, position: number): void {
  let off = 0;
  while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off, position + off);
}

export interface ReadJournal {
  /** The file's header names another journal: it is not this row's file and must not be applied. */
  foreign: boolean;
  /** The file has no readable header (a create cut short by a crash, before creates were atomic): nothing to apply. */
  headless: boolean;
  records: JournalRecord[];
  /** A partial last line was found (a write the crash interrupted: never acknowledged) and ignored. */
  torn: boolean;
}

/** The journal id a file's header names, or undefined when it has no readable header. Reads only the first line. */
export function headerId(path: string): string | undefined {
  const fd = openSync(path, constants.O_RDONLY);
  try {
    const buf = Buffer.alloc(256);
    const n = readSync(fd, buf, 0, buf.length, 0);
    const text = buf.subarray(0, n).toString("utf8");
    const nl = text.indexOf("\n");
    if (nl < 0) return undefined;
    const header = JSON.parse(text.slice(0, nl)) as { journal?: unknown } | null;
    return typeof header?.journal === "string" ? header.journal : undefined;
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/** True when the file's first 256 bytes are absent or all zero (a create cut short before its header); false if unreadable. */
export function blankStart(path: string): boolean {
  let fd: number | undefined;
  try {
    fd = openSync(path, constants.O_RDONLY);
    const buf = Buffer.alloc(256);
    const n = readSync(fd, buf, 0, buf.length, 0);
    return buf.subarray(0, n).every((b) => b === 0);
  } catch {
    return false;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Reads a journal file's records with seq > `after`, in order (see the file format above). */
export function readJournal(path: string, id: string, after: number): ReadJournal {
  const text = readFileSync(path, "utf8");
  const lines = text.split("\n");
  let header: unknown;
  try {
    header = JSON.parse(lines[0] ?? "");
  } catch {
    header = undefined;
  }
  if (!header || typeof header !== "object" || typeof (header as { journal?: unknown }).journal !== "string") {
    return { foreign: false, headless: true, records: [], torn: false };
  }
  if ((header as { journal?: unknown }).journal !== id) return { foreign: true, headless: false, records: [], torn: false };
  const format = (header as { format?: unknown }).format ?? JOURNAL_FORMAT;
  if (format !== JOURNAL_FORMAT) throw new JournalFormatError(path, `format ${JSON.stringify(format)}`);
  const records: JournalRecord[] = [];
  let last = 0;
  let torn = false;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    if (line === "" || line.charCodeAt(0) === 0) break; // the zero-filled rest
    const head = LINE_HEAD.exec(line);
    const docText = head && line.endsWith("}") ? line.slice(head[0].length, -1) : undefined;
    let doc: unknown;
    if (head && docText !== undefined && crc32(docText) === Number(head[2])) {
      try {
        doc = JSON.parse(docText);
      } catch {
        doc = undefined;
      }
    }
    if (last === 0 && !head && isLegacyLine(line)) {
      // The first format: refused, unless Postgres already has everything in it (a session-7 engine killed after its
      // applier caught up — the common case after an upgrade): then there is nothing to misapply, and it is retired.
      if (legacyLastSeq(lines, i) <= after) return { foreign: false, headless: false, records: [], torn: false };
      throw new JournalFormatError(path, "the first format (lines without a checksum)");
    }
    if (!head || !doc || typeof doc !== "object") {
      torn = true; // a write cut short (never acknowledged: acks come after the write is on disk), or old bytes
      break;
    }
    const seq = Number(head[1]);
    // After a rewind, the lines behind the new ones are older (applied) records: a seq that does not follow is the end.
    if (seq <= 0 || (last > 0 && seq !== last + 1)) break;
    last = seq;
    if (seq > after) records.push({ seq, parts: recordParts(doc as Changes) });
  }
  return { foreign: false, headless: false, records, torn };
}
