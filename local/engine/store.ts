// Durable state in Postgres, schema `inngest_local`. The engine process is the only writer (an advisory lock
// enforces it), keeps the live state in memory, and writes every transition here before acting on it.
// Each transition — a step's memo, the next call, history lines, run status — is one JSON document applied by
// one SQL function call: one round trip per step, and the memo grows by one row instead of being rewritten.
import pg from "pg";
import type { EngineEvent, MemoValue } from "./protocol";
import { EngineLock, EngineLockLost } from "./engine-lock";
import { JournalFullError, mergedDoc, recordLine, recordParts, rejectedByPostgres, type JournalRecord } from "./journal";
import {
  APPLY_SQL,
  OpenJournal,
  READ_WAIT_MS,
  checkout,
  message,
  openJournal,
  recoverJournals,
  releaseClient,
  sleep,
  type ApplierContext,
} from "./journal-applier";
import { traceMark, tracing } from "./trace";

export type RunStatus = "queued" | "running" | "sleeping" | "waiting" | "completed" | "failed" | "cancelled";
export const TERMINAL: ReadonlySet<RunStatus> = new Set(["completed", "failed", "cancelled"]);

export type WorkKind =
  | "call" // an SDK call: step = "step" (discovery) or a hashed step id
  | "sleep" // a step.sleep / sleepUntil timer
  | "wait" // a waitForEvent listener; due_at = its timeout
  | "invoke" // waiting for an invoked run; due_at = its timeout
  | "resume" // a step result ready to memoize (matched wait, finished invoke)
  | "cancel" // a cancelOn listener; due_at = its timeout
  | "cancel_run" // a cancellation to carry out
  | "start_timeout"
  | "finish_timeout"
  | "cron";

/** A unit of pending work: a call to make, a timer to fire, an event to wait for. */
export interface WorkRow {
  id: string;
  kind: WorkKind;
  run_id: string | null;
  function_id: string | null;
  /** "step" for a discovery call, else the hashed step id. */
  step: string | null;
  due_at: number | null;
  attempt: number;
  data: Record<string, unknown> | null;
}

export interface RunRow {
  id: string;
  function_id: string;
  status: RunStatus;
  event_id: string;
  event: EngineEvent;
  event_seq: number;
  created_at: number;
  started_at: number | null;
  ended_at: number | null;
  output: unknown;
  error: unknown;
  disable_immediate: boolean;
  concurrency_keys: string[];
  parent: { run_id: string; step: string } | null;
}

export interface MemoRow {
  run_id: string;
  hash: string;
  pos: number;
  value: MemoValue;
  at: number;
}

export interface HistoryRow {
  run_id: string;
  at: number;
  type: string;
  step?: string | null;
  name?: string | null;
  detail?: unknown;
}

export interface EventRow {
  internal_id: string;
  seq: number;
  name: string;
  id: string | null;
  payload: EngineEvent;
  received_at: number;
  processed: boolean;
  duplicate: boolean;
}

export interface RunUpdate {
  id: string;
  status?: RunStatus;
  started_at?: number;
  ended_at?: number;
  output?: unknown;
  error?: unknown;
  disable_immediate?: boolean;
}

/** Everything one transition changes; applied atomically. */
export interface Changes {
  events?: EventRow[];
  processed?: string[];
  runs?: RunRow[];
  runUpdates?: RunUpdate[];
  memos?: MemoRow[];
  history?: HistoryRow[];
  delWork?: string[];
  addWork?: WorkRow[];
}

const SCHEMA_SQL = `
CREATE SCHEMA IF NOT EXISTS inngest_local;
CREATE TABLE IF NOT EXISTS inngest_local.apps (
  id text PRIMARY KEY, url text NOT NULL, framework text, sdk text, synced_at bigint NOT NULL);
CREATE TABLE IF NOT EXISTS inngest_local.functions (
  id text PRIMARY KEY, app_id text NOT NULL, name text, config jsonb NOT NULL, updated_at bigint NOT NULL);
CREATE TABLE IF NOT EXISTS inngest_local.events (
  internal_id text PRIMARY KEY, seq bigint NOT NULL UNIQUE, name text NOT NULL, id text, payload jsonb NOT NULL,
  received_at bigint NOT NULL, processed boolean NOT NULL DEFAULT false, duplicate boolean NOT NULL DEFAULT false);
CREATE INDEX IF NOT EXISTS events_unprocessed ON inngest_local.events (seq) WHERE NOT processed;
CREATE INDEX IF NOT EXISTS events_user_id ON inngest_local.events (id, received_at) WHERE id IS NOT NULL;
CREATE TABLE IF NOT EXISTS inngest_local.runs (
  id text PRIMARY KEY, function_id text NOT NULL, status text NOT NULL, event_id text NOT NULL, event jsonb NOT NULL,
  event_seq bigint NOT NULL, created_at bigint NOT NULL, started_at bigint, ended_at bigint, output jsonb, error jsonb,
  disable_immediate boolean NOT NULL DEFAULT false, concurrency_keys jsonb NOT NULL DEFAULT '[]', parent jsonb);
CREATE INDEX IF NOT EXISTS runs_function ON inngest_local.runs (function_id, created_at DESC);
CREATE INDEX IF NOT EXISTS runs_event ON inngest_local.runs (event_id);
CREATE INDEX IF NOT EXISTS runs_status ON inngest_local.runs (status, created_at DESC);
CREATE TABLE IF NOT EXISTS inngest_local.memos (
  run_id text NOT NULL, hash text NOT NULL, pos int NOT NULL, value jsonb NOT NULL, at bigint NOT NULL,
  PRIMARY KEY (run_id, hash));
CREATE TABLE IF NOT EXISTS inngest_local.history (
  id bigserial PRIMARY KEY, run_id text NOT NULL, at bigint NOT NULL, type text NOT NULL, step text, name text,
  detail jsonb);
CREATE INDEX IF NOT EXISTS history_run ON inngest_local.history (run_id, id);
CREATE TABLE IF NOT EXISTS inngest_local.work (
  id text PRIMARY KEY, kind text NOT NULL, run_id text, function_id text, step text, due_at bigint,
  attempt int NOT NULL DEFAULT 0, data jsonb);
CREATE INDEX IF NOT EXISTS work_run ON inngest_local.work (run_id);

-- The engine's journals (local/engine/journal.ts): one row per journal file, created and committed before the
-- file's first write; applied_seq is moved by the same statement that applies the records, so a replay applies
-- exactly the records after it. A file with no row here belongs to another database and is never applied.
CREATE TABLE IF NOT EXISTS inngest_local.journals (
  id text PRIMARY KEY, path text NOT NULL, applied_seq bigint NOT NULL DEFAULT 0, created_at bigint NOT NULL);

CREATE OR REPLACE FUNCTION inngest_local.apply(doc jsonb) RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
  -- Journaled records first (compare-and-set): a batch whose first record is already applied changes nothing.
  IF doc ? 'journal' THEN
    UPDATE inngest_local.journals SET applied_seq = (doc->'journal'->>'last')::bigint
      WHERE id = doc->'journal'->>'id' AND applied_seq < (doc->'journal'->>'first')::bigint;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'engine journal % has no row or is already applied past seq %',
        doc->'journal'->>'id', doc->'journal'->>'first' USING ERRCODE = 'NSJ01';
    END IF;
  END IF;
  IF doc ? 'events' THEN
    INSERT INTO inngest_local.events SELECT * FROM jsonb_populate_recordset(NULL::inngest_local.events, doc->'events');
  END IF;
  IF doc ? 'runs' THEN
    INSERT INTO inngest_local.runs SELECT * FROM jsonb_populate_recordset(NULL::inngest_local.runs, doc->'runs');
  END IF;
  IF doc ? 'memos' THEN
    INSERT INTO inngest_local.memos SELECT * FROM jsonb_populate_recordset(NULL::inngest_local.memos, doc->'memos')
      ON CONFLICT (run_id, hash) DO NOTHING;
  END IF;
  IF doc ? 'history' THEN
    INSERT INTO inngest_local.history (run_id, at, type, step, name, detail)
      SELECT run_id, at, type, step, name, detail
      FROM jsonb_to_recordset(doc->'history') AS x(run_id text, at bigint, type text, step text, name text, detail jsonb);
  END IF;
  IF doc ? 'runUpdates' THEN
    UPDATE inngest_local.runs r SET
      status = coalesce(u.status, r.status),
      started_at = coalesce(u.started_at, r.started_at),
      ended_at = coalesce(u.ended_at, r.ended_at),
      output = CASE WHEN u.o ? 'output' THEN u.o->'output' ELSE r.output END,
      error = coalesce(u.error, r.error),
      disable_immediate = coalesce(u.disable_immediate, r.disable_immediate)
    FROM (SELECT x.*, e AS o FROM jsonb_array_elements(doc->'runUpdates') e,
          jsonb_to_record(e) AS x(id text, status text, started_at bigint, ended_at bigint, error jsonb,
                                  disable_immediate boolean)) u
    WHERE r.id = u.id;
  END IF;
  IF doc ? 'processed' THEN
    UPDATE inngest_local.events SET processed = true
      WHERE internal_id IN (SELECT jsonb_array_elements_text(doc->'processed'));
  END IF;
  -- Added before deleted, so a transition that adds work and then ends the run removes it too.
  IF doc ? 'addWork' THEN
    INSERT INTO inngest_local.work SELECT * FROM jsonb_populate_recordset(NULL::inngest_local.work, doc->'addWork')
      ON CONFLICT (id) DO NOTHING;
  END IF;
  IF doc ? 'delWork' THEN
    DELETE FROM inngest_local.work WHERE id IN (SELECT jsonb_array_elements_text(doc->'delWork'));
  END IF;
END
$fn$;
`;

interface PendingApply {
  changes: Changes;
  resolve: () => void;
  reject: (err: unknown) => void;
  /** While tracing: the checkpoint this transition commits (local/engine/trace.ts). */
  traceKey?: string;
}

export interface StoreOptions {
  /** Where the journal's warnings and errors go (they matter: see applyRecords). */
  log?: (line: string) => void;
  /** Called once when another engine took this engine's single-writer lock (engine-lock.ts); the store has stopped writing. */
  onLockLost?: (err: Error) => void;
  /** How long reads and close() wait for Postgres to catch up with the journal (default 30 s; tests shorten it). */
  readWaitMs?: number;
  /** Called with false while the lock is being re-taken (nothing is acknowledged), true once it is held again. */
  onLockHeld?: (held: boolean) => void;
  /** How often a fresh journal is tried after one had to be given up (default REOPEN_MS; tests shorten it). */
  reopenMs?: number;
}

export interface RunListFilter {
  status?: string;
  function_id?: string;
  event_id?: string;
  limit?: number;
}

/** How often a fresh journal is tried after one had to be given up (or had no room at start). */
const REOPEN_MS = 5_000;

export class Store {
  readonly pool: pg.Pool;
  private readonly lock: EngineLock;
  private readonly log: (line: string) => void;
  private readonly ctx: ApplierContext;
  private journal: OpenJournal | undefined;
  private closed = false;

  constructor(databaseUrl: string, opts: StoreOptions = {}) {
    this.pool = new pg.Pool({ connectionString: databaseUrl, max: 12 });
    // An idle client killed by the server (e.g. Postgres stopping) must not crash the process.
    this.pool.on("error", () => {});
    this.log = opts.log ?? (() => {});
    this.reopenMs = opts.reopenMs ?? REOPEN_MS;
    // The open journal's row vanished under its applier: another engine recovered it (the lock's fence, below).
    this.ctx = { pool: this.pool, log: this.log, readWaitMs: opts.readWaitMs ?? READ_WAIT_MS, onTaken: () => this.lock.fence() };
    this.lock = new EngineLock(databaseUrl, {
      log: this.log,
      onLost: (err) => this.lockLost(err, opts.onLockLost),
      onHeld: opts.onLockHeld,
    });
  }

  /**
   * Another engine holds the lock this one lost: nothing more is written by this store — transitions are refused
   * (Store.drainApplies), the applier stops — and the journal's row and file are left as they are. The winner applied the
   * journal when it started (recovery reads every journal row, this engine's included): everything this engine
   * acknowledged was in it by then, since nothing is acknowledged while the lock is being re-taken
   * (docs/engine.md, "The single-writer lock").
   */
  private lockLost(err: EngineLockLost, onLockLost?: (err: Error) => void): void {
    const j = this.journal;
    if (j) j.stopped = true;
    this.log(`ENGINE ERROR: ${err.message}; transitions are refused from now on and the engine stops`);
    onLockLost?.(err);
  }

  /** Creates the schema (idempotent, safe against concurrent engines starting at once). */
  async migrate(): Promise<void> {
    const c = await checkout(this.pool);
    try {
      await c.query("BEGIN");
      await c.query("SELECT pg_advisory_xact_lock(hashtext('inngest_local.migrate'))");
      await c.query(SCHEMA_SQL);
      await c.query("COMMIT");
    } catch (err) {
      await c.query("ROLLBACK").catch(() => {});
      throw err;
    } finally {
      releaseClient(c);
    }
  }

  /** Takes the single-writer lock for this database and keeps it (local/engine/engine-lock.ts). */
  acquireEngineLock(waitMs?: number): Promise<void> {
    return this.lock.acquire(waitMs);
  }

  /** The engine is stopping: no transition waits for the lock, or for room in a full journal, any more. */
  beginClose(): void {
    this.closing = true;
    this.lock.giveUpWaiting();
  }

  /**
   * Stops the store. With a journal, everything journaled is applied first (bounded: with Postgres down the
   * journal is kept, and the next start applies it), then the journal is retired.
   */
  async close(): Promise<void> {
    this.closed = true;
    this.closing = true;
    this.lock.giveUpWaiting();
    const j = this.journal;
    if (j && this.lock.lost) {
      // Another engine owns the database (and applied this journal when it started): touch nothing of it.
      j.stopped = true;
      j.file.close();
      this.journal = undefined;
    } else if (j) {
      try {
        for (const deadline = Date.now() + this.ctx.readWaitMs; this.applying || this.applyQueue.length; ) {
          if (Date.now() > deadline) throw new Error("transitions still being written");
          await sleep(5);
        }
        if (j.held) throw new Error("held by the test hook");
        await this.waitApplied(j, j.written, this.ctx.readWaitMs);
        // Everything is applied. The file before its row (as recovery does): a crash in between leaves a row whose
        // file is missing, which the next start retires; the other order would leave a file no row names, for good.
        j.file.remove();
        await this.pool
          .query("DELETE FROM inngest_local.journals WHERE id = $1", [j.file.id])
          .catch((err: unknown) => this.log(`engine journal ${j.file.id}: applied and removed; its row stays (${message(err)}) until the next start retires it`));
      } catch (err) {
        this.log(`engine journal ${j.file.path} kept (${message(err)}): the next start applies it to Postgres`);
        j.file.close();
      }
      j.stopped = true; // an applier still retrying (Postgres down) ends instead of looping on a closed pool
      this.journal = undefined;
    }
    await this.lock.release();
    await this.pool.end();
  }

  // ---- the journal (local/engine/journal.ts, journal-applier.ts; docs/engine.md "The journal") ----

  /** Applies and retires the journals earlier engines left (journal-applier.ts). After the lock, before any read. */
  recoverJournals(): Promise<void> {
    return recoverJournals(this.ctx);
  }

  /**
   * From now on a transition is acknowledged once it is durable in a fresh journal file in `dir`. A disk too full for
   * the file's first megabyte does not stop the start: Postgres is the durable point until a journal can be opened
   * (tried again every REOPEN_MS, with the next transition).
   */
  async openJournal(dir: string): Promise<void> {
    this.journalDir = dir;
    try {
      this.journal = await openJournal(this.ctx, dir, () => this.applying);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== "ENOSPC" && code !== "EDQUOT") throw err;
      this.reopenAfter = Date.now() + this.reopenMs;
      this.reopenFailing = true;
      this.log(`ENGINE WARNING: no room for the engine's journal in ${dir} (${message(err)}); committing to Postgres directly until there is (tried again every ${this.reopenMs / 1000} s)`);
    }
  }

  /** The journal directory openJournal was given: after a journal had to be given up, a fresh one is opened there. */
  private journalDir: string | undefined;
  private readonly reopenMs: number;
  private reopenAfter = 0;
  private reopenFailing = false;
  /** Set by beginClose/close: nothing waits for room in a full journal any more. */
  private closing = false;
  /** A write waits for room in the journal (its disk full): logged once when it starts and once when it ends. */
  private journalFull = false;

  /** Opens a fresh journal after the last one was given up (abandonJournal), in the serialized write path. */
  private async reopenJournal(dir: string): Promise<void> {
    // A fresh journal is a file no winner's recovery has fenced: show the lock is still ours before writing to it.
    if (!(await this.lock.confirm())) return;
    try {
      this.journal = await openJournal(this.ctx, dir, () => this.applying);
      this.reopenFailing = false;
      this.log(`engine journal: writing to a fresh journal again (${this.journal.file.path})`);
    } catch (err) {
      this.reopenAfter = Date.now() + this.reopenMs;
      if (!this.reopenFailing) {
        this.log(`ENGINE WARNING: cannot open a fresh journal in ${dir} (${message(err)}); committing to Postgres directly, trying again every ${this.reopenMs / 1000} s`);
      }
      this.reopenFailing = true;
    }
  }

  /** The journal file in use, if any. */
  get journalPath(): string | undefined {
    return this.journal?.file.path;
  }

  /** Test hook: holds (or releases) the applier, so a test can see a transition acknowledged but not yet applied. */
  holdJournal(held: boolean): void {
    if (!this.journal) throw new Error("no journal is open");
    this.journal.hold(held);
  }

  /** Reads wait here until Postgres has every transition acknowledged before the read. */
  private async readBarrier(): Promise<void> {
    await this.journal?.barrier();
  }

  // The write path's view of the applier (journal-applier.ts).
  private get applierBusy(): boolean {
    return this.journal?.applierBusy ?? false;
  }

  private scheduleApplier(): void {
    this.journal?.schedule();
  }

  private waitApplied(j: OpenJournal, seq: number, ms: number): Promise<void> {
    return j.waitApplied(seq, ms);
  }

  /** Transitions waiting for the apply in flight: group commit (see apply). */
  private applyQueue: PendingApply[] = [];
  private applying = false;
  private waitingForLock = false;
  private gathering = false;
  private gathered = false;

  /**
   * Commits one transition. Group commit: while one commit is in flight, the transitions that arrive are queued
   * and then committed together — one write and one flush for all of them, instead of one each. Each caller is
   * answered only once its transition is durable. Alone (one run), a transition goes straight through.
   *
   * With a journal (openJournal) the durable point is the journal: the batch is one write to the journal file
   * (opened O_DSYNC), and Postgres gets it from the background applier. Without one it is Postgres: one statement,
   * one transaction, one WAL flush; if a merged batch fails, its transitions are applied one by one, so one bad
   * transition never fails the others.
   */
  apply(changes: Changes, traceKey?: string): Promise<void> {
    if (!Object.values(changes).some((v) => Array.isArray(v) && v.length)) return Promise.resolve();
    if (this.closed) return Promise.reject(new Error("the engine's store is closed"));
    return new Promise<void>((resolve, reject) => {
      this.applyQueue.push({ changes, resolve, reject, traceKey });
      this.drainApplies();
    });
  }

  private drainApplies(): void {
    if (this.applying || this.applyQueue.length === 0) return;
    // The single-writer lock is being re-taken: nothing is written or acknowledged without it — what is queued, even
    // queued before its connection ended, waits — and all of it is refused if it was lost (engine-lock.ts).
    const held = this.lock.whenHeld();
    if (held) {
      if (!this.waitingForLock) {
        this.waitingForLock = true;
        held.then(
          () => {
            this.waitingForLock = false;
            this.drainApplies();
          },
          (err: unknown) => {
            this.waitingForLock = false;
            for (const b of this.applyQueue.splice(0)) b.reject(err);
          },
        );
      }
      return;
    }
    if (!this.journal && this.journalDir !== undefined && !this.closing && Date.now() >= this.reopenAfter) {
      // The journal was given up (a write error, its file removed) or never had room: try a fresh one first.
      this.applying = true;
      void this.reopenJournal(this.journalDir).finally(() => {
        this.applying = false;
        this.drainApplies();
      });
      return;
    }
    const j = this.journal;
    if (j && !this.gathered) {
      // One journal write for every transition this turn of the event loop produced (the requests read in one poll
      // of the event loop): setImmediate runs right after it, so one run alone waits for nothing.
      if (!this.gathering) {
        this.gathering = true;
        setImmediate(() => {
          this.gathering = false;
          this.gathered = true;
          this.drainApplies();
        });
      }
      return;
    }
    this.gathered = false;
    this.applying = true;
    const batch = this.applyQueue.splice(0, this.applyQueue.length);
    void (j ? this.journalBatch(j, batch) : this.applyBatch(batch)).finally(() => {
      this.applying = false;
      this.drainApplies();
    });
  }

  /**
   * The journal's group commit: consecutive transitions become one durable write, then their callers are answered
   * and the applier takes them. A transition Postgres would refuse whatever happens (rejectedByPostgres) is not
   * acknowledged early: once everything before it is applied, it is applied directly, and answered (or rejected,
   * as with the journal off) from Postgres — never journaled, so a replay never meets it.
   */
  private async journalBatch(j: OpenJournal, all: PendingApply[]): Promise<void> {
    const batch: { b: PendingApply; parts: [string, string][]; refused: boolean }[] = [];
    for (const b of all) {
      try {
        const parts = recordParts(b.changes);
        batch.push({ b, parts, refused: parts.some(([, inner]) => rejectedByPostgres(inner)) });
      } catch (err) {
        b.reject(err); // not serialisable (as JSON.stringify failing in applyNow with the journal off)
      }
    }
    let i = 0;
    // The lock was held when drainApplies started this batch; after any await below it may not be (its connection
    // ended, another engine took it): what is left goes back to the head of the queue, where drainApplies waits for
    // the lock or refuses it — never written or acknowledged without the lock.
    const requeueUnlessHeld = (from: number): boolean => {
      if (this.lock.held) return false;
      this.applyQueue.unshift(...batch.slice(from).map((x) => x.b));
      return true;
    };
    while (i < batch.length) {
      if (i > 0 && requeueUnlessHeld(i)) return;
      const group: PendingApply[] = [];
      const records: JournalRecord[] = [];
      let text = "";
      for (; i < batch.length && !batch[i]!.refused; i++) {
        const seq = j.written + records.length + 1;
        group.push(batch[i]!.b);
        records.push({ seq, parts: batch[i]!.parts });
        text += recordLine(seq, batch[i]!.parts);
      }
      if (records.length) {
        const keys = tracing ? group.flatMap((b) => (b.traceKey ? [b.traceKey] : [])) : [];
        for (const k of keys) traceMark(k, "sent");
        if (j.applied === j.written && !this.applierBusy) j.file.rewind();
        const start = i - records.length;
        let state: ReturnType<typeof j.file.state>;
        try {
          // Synchronous, in the event loop, once per turn of it (drainApplies): measured against libuv's thread pool
          // and against a write per transition at once (docs/benchmarks.md, session 7).
          j.file.appendSync(Buffer.from(text));
          state = j.file.state();
        } catch (err) {
          if (err instanceof JournalFullError && j.file.used > 0) {
            // The disk is full and the file would have to grow: nothing of the group was written. It waits,
            // unacknowledged, until Postgres has everything before it and the file can be rewound.
            this.applyQueue.unshift(...batch.slice(start).map((x) => x.b));
            await this.waitJournalRoom(j, err);
            return;
          }
          if (err instanceof JournalFullError) {
            // Bigger than the whole file, with no room to grow it: this group goes to Postgres directly (everything
            // before it is applied: the file was rewound), as a transition the journal refuses does.
            if (!(await this.lock.confirm()) && requeueUnlessHeld(start)) return;
            for (let k = start; k < i; k++) {
              if (requeueUnlessHeld(k)) return;
              const { b } = batch[k]!;
              await this.applyNow(b.changes, b.traceKey ? [b.traceKey] : []).then(b.resolve, b.reject);
            }
            continue;
          }
          // Not acknowledged: the group and the rest wait for the path abandonJournal leaves (a fresh journal, or
          // Postgres directly), past drainApplies' lock check.
          await this.abandonJournal(j, err);
          this.applyQueue.unshift(...batch.slice(start).map((x) => x.b));
          return;
        }
        if (state !== "ok") {
          if (state === "fenced") {
            // Another engine recovered this journal — it holds the lock, whatever this engine's connection still
            // shows — and read the file before this write: acknowledging it would lose it. Refused, and the engine
            // stops (the lock's onLost); the rest is refused by drainApplies.
            const lost = new EngineLockLost();
            for (const b of group) b.reject(lost);
            this.lock.fence();
            this.applyQueue.unshift(...batch.slice(i).map((x) => x.b));
            return;
          }
          // The file was unlinked (its directory removed): what is written there would not survive a crash.
          await this.abandonJournal(j, new Error(`${j.file.path} was removed from its directory`));
          this.applyQueue.unshift(...batch.slice(start).map((x) => x.b));
          return;
        }
        if (this.journalFull) {
          this.journalFull = false;
          this.log(`engine journal: room again (Postgres caught up and the journal was rewound); acknowledging again`);
        }
        for (const k of keys) traceMark(k, "pgdone");
        j.written = records[records.length - 1]!.seq;
        j.toApply.push(...records);
        for (const b of group) b.resolve();
        this.scheduleApplier();
      }
      if (i < batch.length) {
        const { b } = batch[i++]!;
        try {
          await this.waitApplied(j, j.written, READ_WAIT_MS);
          if (requeueUnlessHeld(i - 1)) return;
          await this.applyNow(b.changes, b.traceKey ? [b.traceKey] : []);
          b.resolve();
        } catch (err) {
          b.reject(err);
        }
      }
    }
  }

  /**
   * The journal's disk is full and the file would have to grow: waits until Postgres has everything written (the
   * applier goes on; when Postgres is full too, until it has room again), so the file can be rewound. One line when
   * it starts (the next successful write logs the end). Stopping ends the wait: what waits is refused, never acknowledged.
   */
  private async waitJournalRoom(j: OpenJournal, err: JournalFullError): Promise<void> {
    if (!this.journalFull) {
      this.journalFull = true;
      this.log(
        `ENGINE WARNING: the journal's disk is full (${err.reason.code} growing ${j.file.path}); nothing more is acknowledged ` +
          `until Postgres has the ${j.written - j.applied} transitions the journal is ahead and it can be rewound`,
      );
    }
    for (;;) {
      try {
        await this.waitApplied(j, j.written, 1_000);
        return;
      } catch {
        if (j.stopped || this.closing) {
          const refused = new Error("the engine is stopping while its journal's disk is full; not acknowledged");
          for (const b of this.applyQueue.splice(0)) b.reject(refused);
          return;
        }
      }
    }
  }

  /**
   * The journal file cannot be written (an I/O error, its file removed): once Postgres has everything acknowledged,
   * the journal is retired and the engine commits to Postgres directly (the journal-off path) until a fresh journal
   * opens (drainApplies tries at once, then every REOPEN_MS).
   */
  private async abandonJournal(j: OpenJournal, err: unknown): Promise<void> {
    this.log(`ENGINE ERROR: the journal ${j.file.path} cannot be written (${message(err)}); committing to Postgres directly until a fresh journal opens`);
    this.reopenAfter = 0;
    for (;;) {
      try {
        await this.waitApplied(j, j.written, READ_WAIT_MS);
        break;
      } catch {
        // Postgres is down: nothing can be committed anywhere until it is back
        if (j.stopped) return;
      }
    }
    this.journal = undefined;
    // The row must go before anything is committed elsewhere: the file may hold complete lines of the group whose
    // write failed (not acknowledged: they wait in the queue for the path after this one); with the row kept, the
    // next start would apply them a second time, after later transitions.
    for (;;) {
      try {
        await this.pool.query("DELETE FROM inngest_local.journals WHERE id = $1", [j.file.id]);
        break;
      } catch {
        if (this.closed) return;
        await sleep(200);
      }
    }
    try {
      j.file.remove();
    } catch {
      // the row is gone: the file is never applied again
    }
  }

  private async applyBatch(batch: PendingApply[]): Promise<void> {
    // Straight to Postgres because the journal was given up (or had no room): unfenced, so the lock is confirmed
    // first. (With the journal off by configuration this is the normal path and stays unconfirmed: docs/engine.md.)
    if (this.journalDir !== undefined && !(await this.lock.confirm())) {
      this.applyQueue.unshift(...batch);
      return;
    }
    const keys = tracing ? batch.flatMap((b) => (b.traceKey ? [b.traceKey] : [])) : [];
    if (batch.length > 1) {
      try {
        // One document for the batch, built as the journal's applier builds its batches (local/engine/journal.ts).
        await this.applyDoc(mergedDoc(batch.map((b) => ({ seq: 0, parts: recordParts(b.changes) }))), keys);
        for (const b of batch) b.resolve();
        return;
      } catch {
        // fall through: one at a time, in order
      }
    }
    for (const b of batch) {
      try {
        await this.applyNow(b.changes, b.traceKey ? [b.traceKey] : []);
        b.resolve();
      } catch (err) {
        b.reject(err);
      }
    }
  }

  private async applyNow(changes: Changes, traceKeys: string[] = []): Promise<void> {
    const parts = recordParts(changes);
    if (!parts.length) return;
    await this.applyDoc(mergedDoc([{ seq: 0, parts }]), traceKeys);
  }

  private async applyDoc(text: string, traceKeys: string[]): Promise<void> {
    for (const k of traceKeys) traceMark(k, "sent");
    // A named statement: each pooled connection parses and plans it once, not on every step.
    await this.pool.query({ name: "inngest_local_apply", text: APPLY_SQL, values: [text] });
    for (const k of traceKeys) traceMark(k, "pgdone");
  }

  async saveApp(
    app: { id: string; url: string; framework?: string; sdk?: string; syncedAt: number },
    fns: { id: string; name?: string; config: unknown }[],
    cron: { remove: string[]; add: WorkRow[] },
  ): Promise<string[]> {
    await this.readBarrier(); // after everything acknowledged before it, as when Postgres was the durable point
    await this.lock.whenHeld();
    const c = await checkout(this.pool);
    try {
      await c.query("BEGIN");
      await c.query(
        `INSERT INTO inngest_local.apps (id, url, framework, sdk, synced_at) VALUES ($1,$2,$3,$4,$5)
         ON CONFLICT (id) DO UPDATE SET url = excluded.url, framework = excluded.framework, sdk = excluded.sdk,
         synced_at = excluded.synced_at`,
        [app.id, app.url, app.framework ?? null, app.sdk ?? null, app.syncedAt],
      );
      const removed = await c.query<{ id: string }>(
        "DELETE FROM inngest_local.functions WHERE app_id = $1 AND NOT (id = ANY($2::text[])) RETURNING id",
        [app.id, fns.map((f) => f.id)],
      );
      for (const f of fns) {
        await c.query(
          `INSERT INTO inngest_local.functions (id, app_id, name, config, updated_at) VALUES ($1,$2,$3,$4,$5)
           ON CONFLICT (id) DO UPDATE SET app_id = excluded.app_id, name = excluded.name, config = excluded.config,
           updated_at = excluded.updated_at`,
          [f.id, app.id, f.name ?? null, JSON.stringify(f.config), app.syncedAt],
        );
      }
      if (cron.remove.length) await c.query("DELETE FROM inngest_local.work WHERE id = ANY($1::text[])", [cron.remove]);
      for (const w of cron.add) {
        await c.query(
          "INSERT INTO inngest_local.work (id, kind, run_id, function_id, step, due_at, attempt, data) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)",
          [w.id, w.kind, w.run_id, w.function_id, w.step, w.due_at, w.attempt, JSON.stringify(w.data)],
        );
      }
      await c.query("COMMIT");
      return removed.rows.map((r) => r.id);
    } catch (err) {
      await c.query("ROLLBACK").catch(() => {});
      throw err;
    } finally {
      releaseClient(c);
    }
  }

  async loadFunctions(): Promise<{ id: string; app_id: string; config: Record<string, unknown> }[]> {
    await this.readBarrier();
    return (await this.pool.query("SELECT id, app_id, config FROM inngest_local.functions")).rows;
  }

  async loadActiveRuns(): Promise<RunRow[]> {
    await this.readBarrier();
    const r = await this.pool.query<RunRow>(
      "SELECT * FROM inngest_local.runs WHERE status NOT IN ('completed','failed','cancelled') ORDER BY created_at",
    );
    return r.rows.map(normalizeRun);
  }

  async loadWork(): Promise<WorkRow[]> {
    await this.readBarrier();
    const r = await this.pool.query<WorkRow>("SELECT * FROM inngest_local.work");
    return r.rows.map((w) => ({ ...w, due_at: w.due_at === null ? null : Number(w.due_at) }));
  }

  async loadMemos(runId: string): Promise<MemoRow[]> {
    await this.readBarrier();
    const r = await this.pool.query<MemoRow>(
      "SELECT run_id, hash, pos, value, at FROM inngest_local.memos WHERE run_id = $1 ORDER BY pos",
      [runId],
    );
    return r.rows.map((m) => ({ ...m, at: Number(m.at) }));
  }

  async loadUnprocessedEvents(): Promise<EventRow[]> {
    await this.readBarrier();
    const r = await this.pool.query<EventRow>("SELECT * FROM inngest_local.events WHERE NOT processed ORDER BY seq");
    return r.rows.map((e) => ({ ...e, seq: Number(e.seq), received_at: Number(e.received_at) }));
  }

  async maxEventSeq(): Promise<number> {
    await this.readBarrier();
    const r = await this.pool.query<{ m: string | null }>("SELECT max(seq)::text AS m FROM inngest_local.events");
    return Number(r.rows[0]?.m ?? 0);
  }

  async recentEventIds(since: number): Promise<{ id: string; received_at: number }[]> {
    await this.readBarrier();
    const r = await this.pool.query<{ id: string; received_at: string }>(
      "SELECT id, max(received_at)::text AS received_at FROM inngest_local.events WHERE id IS NOT NULL AND NOT duplicate AND received_at >= $1 GROUP BY id",
      [since],
    );
    return r.rows.map((x) => ({ id: x.id, received_at: Number(x.received_at) }));
  }

  // ---- read API ----

  async listRuns(f: RunListFilter): Promise<RunRow[]> {
    await this.readBarrier();
    const where: string[] = [];
    const args: unknown[] = [];
    if (f.status) {
      args.push(f.status.split(",").map((s) => s.trim().toLowerCase()));
      where.push(`status = ANY($${args.length}::text[])`);
    }
    if (f.function_id) {
      args.push(f.function_id);
      where.push(`function_id = $${args.length}`);
    }
    if (f.event_id) {
      args.push(f.event_id);
      where.push(`event_id = $${args.length}`);
    }
    args.push(Math.min(Math.max(f.limit ?? 100, 1), 1000));
    const r = await this.pool.query<RunRow>(
      `SELECT * FROM inngest_local.runs ${where.length ? `WHERE ${where.join(" AND ")}` : ""}
       ORDER BY created_at DESC, id DESC LIMIT $${args.length}`,
      args,
    );
    return r.rows.map(normalizeRun);
  }

  async getRun(id: string): Promise<RunRow | undefined> {
    await this.readBarrier();
    const r = await this.pool.query<RunRow>("SELECT * FROM inngest_local.runs WHERE id = $1", [id]);
    return r.rows[0] ? normalizeRun(r.rows[0]) : undefined;
  }

  async history(runId: string): Promise<HistoryRow[]> {
    await this.readBarrier();
    const r = await this.pool.query<HistoryRow>(
      "SELECT run_id, at, type, step, name, detail FROM inngest_local.history WHERE run_id = $1 ORDER BY id",
      [runId],
    );
    return r.rows.map((h) => ({ ...h, at: Number(h.at) }));
  }

  async getEvent(internalId: string): Promise<EventRow | undefined> {
    await this.readBarrier();
    const r = await this.pool.query<EventRow>("SELECT * FROM inngest_local.events WHERE internal_id = $1", [internalId]);
    const e = r.rows[0];
    return e ? { ...e, seq: Number(e.seq), received_at: Number(e.received_at) } : undefined;
  }
}

function normalizeRun(r: RunRow): RunRow {
  return {
    ...r,
    event_seq: Number(r.event_seq),
    created_at: Number(r.created_at),
    started_at: r.started_at === null ? null : Number(r.started_at),
    ended_at: r.ended_at === null ? null : Number(r.ended_at),
  };
}
