// The journal's Postgres side (docs/engine.md, "The journal"): the background applier that takes what the writer
// (Store.apply, local/engine/store.ts) made durable in the journal file and applies it to Postgres in seq order, the
// read barrier that makes reads wait for it, and the recovery of journals earlier engines left behind. The file and
// its format are journal.ts's; the write path (group commit, the journal write, acknowledgements) is store.ts's.
import { existsSync, readdirSync, rmSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import type pg from "pg";
import { ulid } from "./ids";
import { JOURNAL_NAME, JournalFile, blankStart, fenceJournal, headerId, journalPath, mergedDoc, readJournal, type JournalRecord } from "./journal";
import { traceMark, tracing } from "./trace";

export const APPLY_SQL = "SELECT inngest_local.apply($1::jsonb)";
/** Journaled transitions applied to Postgres in one statement, at most. */
const APPLY_BATCH = 512;
/** How long a read waits for Postgres to catch up with the journal before it fails (Postgres down). */
export const READ_WAIT_MS = 30_000;
/** Times Postgres may reject a journaled transition that passed rejectedByPostgres before it is skipped. */
const MAX_REJECTIONS = 3;
/**
 * A journal-named file with no header (or a `.tmp` one) older than this, found in the journal directory with no row
 * here, is removed: no engine can ever apply it (recovery refuses a file without its header, and reads only the final
 * name), and this is far longer than any create takes, so it is not another engine's create in progress.
 */
const LEFTOVER_AGE_MS = 10 * 60_000;
/**
 * The applier's pace (docs/benchmarks.md, session 8). A statement leaves at most once per APPLY_GAP_MS, and then right
 * after a journal write's answers (schedule()), never whenever Postgres answered the last one: each statement's socket
 * write blocks the engine's thread 0.2–0.9 ms on this VM (Postgres wakes and runs on it), and its commit's WAL flush
 * shares the disk with the journal's writes, so a statement per step sent at random moments delayed a third of the
 * checkpoints. A read that needs the records (the read barrier, stop) sends them at once, and so does a backlog of
 * APPLY_BATCH; with no write to follow, they leave APPLY_GAP_MS + APPLY_IDLE_MS after the last statement.
 */
const APPLY_GAP_MS = 20;
const APPLY_IDLE_MS = 10;

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const ignore = () => {};

/**
 * A pooled client checked out by hand has no 'error' listener (the pool's is off while it is out): an error Postgres
 * sends in the same packet right after a statement's answer — a shutdown's or pg_terminate_backend's 57P01 — is
 * emitted before the code awaiting the answer can release it, and would crash the process. The statement still gets
 * its own error; a broken client is dropped by the pool on release. Pair with `releaseClient`.
 */
export async function checkout(pool: pg.Pool): Promise<pg.PoolClient> {
  const client = await pool.connect();
  client.on("error", ignore);
  return client;
}

export function releaseClient(client: pg.PoolClient, err?: Error): void {
  client.removeListener("error", ignore);
  client.release(err);
}
export const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

/**
 * A Postgres error that says the records themselves were refused: a data exception (class 22) or an integrity
 * violation (class 23) — what retrying can never change. Anything else (unreachable, restarting, read-only after a
 * failover, a lock timeout, the schema missing, an internal error…) is waited out: an acknowledged transition is
 * skipped only when Postgres refuses its content, never because Postgres was briefly unwell.
 */
function isRejection(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" && /^(22|23)[0-9A-Z]{3}$/.test(code);
}

export interface ApplierContext {
  pool: pg.Pool;
  /** Where the journal's warnings and errors go (they matter: see applyRecords). */
  log: (line: string) => void;
  /** How long a read (and the store's close) waits for Postgres to catch up with the journal; READ_WAIT_MS. */
  readWaitMs: number;
  /** The open journal's row is gone while it still has records to apply: another engine recovered (took) it. */
  onTaken?: () => void;
}

/**
 * The open journal and how far Postgres has caught up with it. The writer (store.ts) appends to `file`, moves
 * `written` and pushes the records onto `toApply`, then calls `schedule()`; the applier moves `applied`.
 */
export class OpenJournal {
  /** The last seq written to the file (durable, acknowledged). */
  written = 0;
  /** The last seq applied to Postgres (or skipped, see applyRecords). */
  applied = 0;
  /** Written, not yet applied, in seq order. */
  toApply: JournalRecord[] = [];
  /** The applier's last Postgres error while it retries, for the reads' error message. */
  lastError?: string;
  /** The store closed: the applier and its retry loops stop (what is left stays in the file for the next start). */
  stopped = false;
  private busy = false;
  private scheduled = false;
  /** The fallback timer of afterBatch. */
  private deferred: NodeJS.Timeout | undefined;
  /** performance.now() when the last statement left. */
  private lastSent = -Infinity;
  /** Reads waiting for the journal to be applied up to `seq`. */
  private waiters: { seq: number; resolve: () => void }[] = [];

  constructor(
    readonly file: JournalFile,
    private readonly ctx: ApplierContext,
    /** True while the writer has a journal write in flight (no rewind then). */
    private readonly writing: () => boolean,
    /** Test hook (INNGEST_ENGINE_JOURNAL_HOLD=1, hold): the applier applies nothing while set. */
    public held: boolean,
  ) {}

  /** True while the applier runs a batch (the writer rewinds the file only when it does not). */
  get applierBusy(): boolean {
    return this.busy;
  }

  /** Test hook: holds (or releases) the applier, so a test can see a transition acknowledged but not yet applied. */
  hold(held: boolean): void {
    this.held = held;
    if (!held) this.kick();
  }

  /** Reads wait here until Postgres has every transition acknowledged before the read. */
  async barrier(): Promise<void> {
    if (this.applied >= this.written) return;
    await this.waitApplied(this.written, this.ctx.readWaitMs);
  }

  waitApplied(seq: number, ms: number): Promise<void> {
    if (this.applied >= seq) return Promise.resolve();
    // A read waits: what the applier holds back (see APPLY_GAP_MS) goes now.
    queueMicrotask(() => this.kick());
    return new Promise<void>((resolve, reject) => {
      const w = {
        seq,
        resolve: () => {
          clearTimeout(t);
          resolve();
        },
      };
      const t = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        reject(
          new Error(
            `the engine's journal is ${this.written - this.applied} transitions ahead of Postgres after ${ms / 1000} s` +
              (this.lastError ? ` (Postgres: ${this.lastError})` : ""),
          ),
        );
      }, ms);
      this.waiters.push(w);
    });
  }

  private wakeWaiters(): void {
    if (!this.waiters.length) return;
    this.waiters = this.waiters.filter((w) => {
      if (w.seq > this.applied) return true;
      w.resolve();
      return false;
    });
  }

  /**
   * Called by the writer after a journal write. The applier starts after this turn of the event loop, so the answers to
   * what was just made durable go out first and the statement leaves while the SDK works on them — unless the last
   * statement left less than APPLY_GAP_MS ago (then a later write's call, or afterBatch's timer, sends them).
   */
  schedule(): void {
    if (this.scheduled || this.busy) return;
    if (performance.now() < this.lastSent + APPLY_GAP_MS) return this.afterBatch();
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.kick();
    });
  }

  private kick(): void {
    if (this.held || this.busy || this.stopped || this.toApply.length === 0) return;
    if (this.deferred) {
      clearTimeout(this.deferred);
      this.deferred = undefined;
    }
    this.busy = true;
    this.lastSent = performance.now();
    void this.run()
      .catch(async (err: unknown) => {
        if (this.stopped) return; // the store closed with Postgres down: the journal stays for the next start
        this.ctx.log(`ENGINE ERROR: the journal's applier failed (${message(err)}); retrying`);
        await sleep(500);
      })
      .finally(() => {
        this.busy = false;
        this.afterBatch();
      });
  }

  /**
   * Records left after a statement (written while it was in flight), or held back by the pace: at once if a read waits
   * for them or a backlog built up; otherwise with a later write's schedule(), or by a timer if no write comes.
   */
  private afterBatch(): void {
    if (this.held || this.stopped || this.toApply.length === 0) return;
    if (this.waiters.length || this.toApply.length >= APPLY_BATCH) return this.kick();
    this.deferred ??= setTimeout(() => {
      this.deferred = undefined;
      this.kick();
    }, APPLY_GAP_MS + APPLY_IDLE_MS);
  }

  /**
   * The background applier: journaled transitions to Postgres, strictly in seq order, in batches — one per kick, more
   * in a row only while a read waits or a backlog lasts (see APPLY_GAP_MS).
   */
  private async run(): Promise<void> {
    for (let first = true; this.toApply.length && !this.held && !this.stopped; first = false) {
      if (!first && !this.waiters.length && this.toApply.length < APPLY_BATCH) break;
      const batch = this.toApply.slice(0, APPLY_BATCH);
      await applyRecords(this.ctx, this.file.id, batch, (seq) => {
        this.applied = seq;
        this.lastError = undefined;
        let k = 0;
        while (k < this.toApply.length && this.toApply[k]!.seq <= seq) k++;
        this.toApply.splice(0, k);
        this.wakeWaiters();
      }, true, this);
    }
    // Everything written is applied: the next write starts right after the header again (the writer's loop does the
    // same before a write; here only when no write is in flight, so no append races the rewind).
    if (this.applied === this.written && !this.writing()) this.file.rewind();
  }
}

/**
 * From now on a transition is acknowledged once it is in a fresh journal file in `dir` (fsynced), and applied to
 * Postgres in the background. The journal's row is committed before the file's first write, and records the
 * file's path, so a restart with another journal directory still finds it.
 */
export async function openJournal(ctx: ApplierContext, dir: string, writing: () => boolean): Promise<OpenJournal> {
  const id = ulid();
  const abs = resolve(dir);
  await sweepJournalDir(ctx, abs);
  await ctx.pool.query("INSERT INTO inngest_local.journals (id, path, applied_seq, created_at) VALUES ($1, $2, 0, $3)", [
    id,
    journalPath(abs, id),
    Date.now(),
  ]);
  let file: JournalFile;
  try {
    file = JournalFile.create(abs, id);
  } catch (err) {
    await ctx.pool.query("DELETE FROM inngest_local.journals WHERE id = $1", [id]).catch(() => {});
    throw err;
  }
  if (!file.fenceable) {
    ctx.log(`engine journal ${id}: this file system does not keep file modes (${abs}); the lock's fence is off for this journal`);
  }
  // Test hook: INNGEST_ENGINE_JOURNAL_HOLD=1 keeps everything in the journal (tests/integration/engine/journal.test.ts).
  return new OpenJournal(file, ctx, writing, process.env["INNGEST_ENGINE_JOURNAL_HOLD"] === "1");
}

/**
 * Applies what earlier engines journaled but did not apply (a crash, a stop with Postgres down), then retires
 * those journals. Only journals with a row in this database: a file without one (the database was recreated)
 * is never applied. Call after acquireEngineLock and before anything reads the state.
 */
export async function recoverJournals(ctx: ApplierContext): Promise<void> {
  const rows = await ctx.pool.query<{ id: string; path: string; applied_seq: string }>(
    "SELECT id, path, applied_seq::text FROM inngest_local.journals ORDER BY id",
  );
  for (const row of rows.rows) {
    const after = Number(row.applied_seq);
    let ours = true;
    // A file that vanishes between the check and the read (its engine retired it meanwhile) counts as missing.
    let r: ReturnType<typeof readJournal> | undefined;
    if (existsSync(row.path)) {
      try {
        // The fence first: an engine that lost the lock but has not noticed yet acknowledges nothing it writes from
        // now on, so everything it acknowledged is in the file read below (docs/engine.md, "The single-writer lock").
        // (Only this row's own file: a file whose header names another journal is never touched.)
        const unfenced = headerId(row.path) === row.id ? fenceJournal(row.path) : undefined;
        if (unfenced) ctx.log(`engine journal ${row.id}: could not fence ${row.path} before reading it (${unfenced})`);
        // A file in another format throws here (JournalFormatError): the start fails loudly, nothing of it is applied.
        r = readJournal(row.path, row.id, after);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      }
    }
    if (!r) {
      ctx.log(`engine journal ${row.id}: ${row.path} is missing; Postgres has its transitions up to seq ${after}`);
      // A crash inside JournalFile.create leaves the file it was writing under its temporary name.
      rmSync(`${row.path}.tmp`, { force: true });
    } else {
      if (r.headless) {
        // The file this row names, cut short before its header by a crash inside create: it holds nothing.
        ctx.log(`engine journal ${row.id}: ${row.path} has no header (a create the crash cut short); removed`);
      } else if (r.foreign) {
        ours = false;
        ctx.log(`engine journal ${row.id}: ${row.path} is another journal's file; not applied`);
      } else {
        for (let i = 0; i < r.records.length; i += APPLY_BATCH) {
          await applyRecords(ctx, row.id, r.records.slice(i, i + APPLY_BATCH), () => {}, false);
        }
        const range = r.records.length ? ` (seq ${r.records[0]!.seq}..${r.records[r.records.length - 1]!.seq})` : "";
        ctx.log(
          `engine journal ${row.id}: applied ${r.records.length} journaled transitions to Postgres${range}` +
            (r.torn ? "; ignored an unreadable last line (a write the stop cut short, never acknowledged)" : ""),
        );
      }
    }
    // The file before its row: a crash in between leaves a row whose file is missing, which the next start retires
    // (everything in it was applied); the other order would leave a journal file no row names, for good.
    if (ours) rmSync(row.path, { force: true });
    await ctx.pool.query("DELETE FROM inngest_local.journals WHERE id = $1", [row.id]);
  }
}

/**
 * The journal directory after recovery: every journal of this database was applied and retired, so a journal-named
 * file left here has no row in this database. It may be another database's (the directory can be shared): one with
 * a header is left alone — its own database's engine applies it — and logged once; one that no engine can ever apply
 * (no header, or a `.tmp` of a create that never finished) and is old enough not to be a create in progress is
 * removed: before creates were atomic, each crash inside one leaked such a file (1 MB).
 */
async function sweepJournalDir(ctx: ApplierContext, dir: string): Promise<void> {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return; // not created yet
  }
  const kept: string[] = [];
  let removed = 0;
  for (const name of names) {
    const m = JOURNAL_NAME.exec(name);
    if (!m) continue;
    const path = join(dir, name);
    try {
      // Only what a cut-short create leaves: a `.tmp`, or a file whose start is empty or zeros (never written past
      // its preallocation). Anything else without a readable header — unreadable now, or another format a newer
      // engine wrote — may hold another database's unapplied transitions: left alone.
      const dead = m[2] !== undefined || (headerId(path) === undefined && blankStart(path));
      if (dead && Date.now() - statSync(path).mtimeMs > LEFTOVER_AGE_MS) {
        rmSync(path, { force: true });
        removed++;
      } else {
        kept.push(name);
      }
    } catch {
      // gone meanwhile (its own engine retired it), or unreadable: left alone
    }
  }
  if (removed) ctx.log(`engine journal directory ${dir}: removed ${removed} journal files no engine can apply (creates a crash cut short)`);
  if (kept.length) {
    ctx.log(
      `engine journal directory ${dir}: ${kept.length} journal files belong to no journal of this database ` +
        `(another database's engine, or left behind); left alone: ${kept.slice(0, 5).join(", ")}${kept.length > 5 ? ", …" : ""}`,
    );
  }
}

/**
 * Applies journaled records in one statement that also moves the journal's applied position. If Postgres
 * rejects the batch, its records are applied one at a time; one it keeps rejecting (it passed
 * rejectedByPostgres, so an engine bug) is logged with its seq and, after MAX_REJECTIONS tries, skipped with an
 * error line rather than wedging the engine. Postgres unreachable: retried with backoff when `retry`, else thrown.
 */
async function applyRecords(
  ctx: ApplierContext,
  id: string,
  records: JournalRecord[],
  applied: (seq: number) => void,
  retry: boolean,
  j?: OpenJournal,
): Promise<void> {
  const { pool, log } = ctx;
  let rejections = 0;
  let outage = 0;
  for (;;) {
    try {
      // Connecting apart from the statement: an error while connecting (refused, not accepting connections, too
      // many clients, even a permission error) says Postgres cannot be reached, never that it refused the records.
      const client = await checkout(pool).catch((err: unknown) => {
        throw Object.assign(new Error(`cannot connect to Postgres: ${message(err)}`), { connectFailed: true });
      });
      try {
        const doc = mergedDoc(records, { id });
        // While tracing: when the statement left (its socket write is synchronous, inside query()) and came back.
        const tk = tracing ? `applier:${id}:${records[0]!.seq}` : "";
        if (tracing) traceMark(tk, "sent");
        const done = client.query({ name: "inngest_local_apply", text: APPLY_SQL, values: [doc] });
        if (tracing) traceMark(tk, "written");
        await done;
        if (tracing) traceMark(tk, "done");
        releaseClient(client);
      } catch (err) {
        releaseClient(client, isRejection(err) ? undefined : (err as Error)); // a broken connection is not reused
        throw err;
      }
      if (outage) log(`engine journal: Postgres is back; applying the journal again`);
      applied(records[records.length - 1]!.seq);
      return;
    } catch (err) {
      if ((err as { code?: string }).code === "NSJ01") {
        // Postgres has (some of) these already: a commit whose answer was lost with its connection. Skip those.
        const r = await pool
          .query<{ a: string }>("SELECT applied_seq::text AS a FROM inngest_local.journals WHERE id = $1", [id])
          .catch(() => undefined);
        if (r && !r.rows[0] && j) {
          // The open journal's row is gone: another engine recovered this journal (it took the lock this engine has
          // not yet noticed it lost) and retired it. Nothing more of it is applied here: the winner owns it all now.
          j.stopped = true;
          ctx.onTaken?.();
          return;
        }
        const done = r?.rows[0] ? Number(r.rows[0].a) : undefined;
        if (done !== undefined) {
          const rest = records.filter((x) => x.seq > done);
          if (rest.length < records.length) {
            applied(Math.min(done, records[records.length - 1]!.seq));
            if (!rest.length) return;
            records = rest;
            continue;
          }
        }
      }
      if ((err as { connectFailed?: boolean }).connectFailed || !isRejection(err)) {
        if (!retry || j?.stopped) throw err;
        if (j) j.lastError = message(err);
        if (outage++ === 0) {
          log(`engine journal: Postgres unavailable (${message(err)}); retrying — acknowledgements continue from the journal, reads wait`);
        }
        await sleep(Math.min(2_000, 50 * 2 ** Math.min(outage, 6)));
        continue;
      }
      if (records.length > 1) {
        for (const r of records) await applyRecords(ctx, id, [r], applied, retry, j);
        return;
      }
      const seq = records[0]!.seq;
      rejections++;
      log(`engine journal ${id}: Postgres rejected transition seq ${seq} (try ${rejections} of ${MAX_REJECTIONS}): ${message(err)}`);
      if (rejections < MAX_REJECTIONS) {
        await sleep(100 * rejections);
        continue;
      }
      log(`ENGINE ERROR: journal ${id}: transition seq ${seq} SKIPPED after ${MAX_REJECTIONS} rejections; Postgres lacks it: ${message(err)}`);
      for (;;) {
        try {
          await pool.query("UPDATE inngest_local.journals SET applied_seq = $2 WHERE id = $1 AND applied_seq < $2", [id, seq]);
          break;
        } catch (e) {
          if (!retry || j?.stopped) throw e;
          await sleep(500);
        }
      }
      applied(seq);
      return;
    }
  }
}
