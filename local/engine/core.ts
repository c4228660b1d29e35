// The engine's shared state and the one way it changes: a transition (Tx) is committed to Postgres, then
// applied to memory. Every other layer of the executor (see executor.ts) builds on these helpers.
//
// Concurrency model: one engine process owns the database (advisory lock). Live state is in memory; every
// transition is committed to Postgres (one `apply` round trip) before its effects become visible in memory,
// so after a crash the database describes exactly the work still to do. Results for one run are processed
// one at a time (a per-run promise chain); calls for different steps of a run can be in flight together.
import { evaluate } from "./cel";
import type { Clock } from "./clock";
import { defaultBackoff } from "./durations";
import { ulid } from "./ids";
import type { EngineEvent, MemoValue } from "./protocol";
import type { FunctionDef } from "./registry";
import { DueQueue } from "./scheduler";
import { TERMINAL, type Changes, type EventRow, type RunRow, type RunStatus, type Store, type WorkKind, type WorkRow } from "./store";

export const DAY = 86_400_000;
export const DEDUPE_WINDOW = DAY;
export const MAX_STEPS = 1000;

export interface ExecutorOptions {
  store: Store;
  clock: Clock;
  signingKey?: string;
  log: (line: string) => void;
  /** Most SDK calls in flight at once, across all runs. */
  maxInflight?: number;
  /** Per-call HTTP timeout (wall clock). */
  callTimeoutMs?: number;
  /** Delay before retry number `attempt + 1`; defaults to Inngest's table with jitter. */
  retryBackoff?: (attempt: number) => number;
  /** Upper bound for a `retry-after` the app asks for. */
  maxRetryAfterMs?: number;
  /** "checkpoint" (default, as Inngest Cloud with SDK 4.x): send ctx.fn_id/qi_id so the SDK runs many steps
   * per request and posts them to /v1/checkpoint/{runId}/async. "classic": one step per request. */
  mode?: EngineMode;
}

export type EngineMode = "checkpoint" | "classic";

export interface Pending {
  workId: string;
  kind: WorkKind;
  race?: boolean;
}

export interface RunMem {
  row: RunRow;
  /** Memoized results by hashed step id, and the completion order; null when evicted (run is idle). */
  memo: Map<string, MemoValue> | null;
  stack: string[] | null;
  /** JSON text of each memo entry, serialised once instead of on every call. */
  memoJson: Map<string, string>;
  memoLoading?: Promise<void>;
  /** Steps started but not memoized: planned calls, retries, sleeps, waits, invokes, resumes. */
  pending: Map<string, Pending>;
  /** The discovery call (stepId=step) queued or in flight, if any. */
  discovery: string | null;
  rediscover: boolean;
  workIds: Set<string>;
  names: Map<string, string>;
  lock: Promise<unknown>;
}

/** One transition: the rows to write, then what to change in memory once they are committed. */
export class Tx {
  ch: Required<Changes> = {
    events: [],
    processed: [],
    runs: [],
    runUpdates: [],
    memos: [],
    history: [],
    delWork: [],
    addWork: [],
  };
  after: (() => void)[] = [];
  undo: (() => void)[] = [];
  waitFor: Promise<unknown>[] = [];
  internalEvents: EventRow[] = [];
  /** While tracing (local/engine/trace.ts): the checkpoint this transition commits, so the store marks its hops. */
  traceKey?: string;
}

export interface CallResult {
  status: number;
  text: string;
  header: (name: string) => string | null;
  error?: string;
  /** The app refused the connection: nothing listens there (yet). Not an attempt; see dispatch.ts. */
  refused?: boolean;
}

export abstract class EngineCore {
  readonly functions = new Map<string, FunctionDef>();
  protected runs = new Map<string, RunMem>();
  protected work = new Map<string, WorkRow>();
  /** event name -> ids of `wait` and `cancel` work listening for it */
  protected listeners = new Map<string, Set<string>>();
  protected waitReady = new Map<string, Promise<void>>();
  protected ready: string[] = [];
  protected inflight = 0;
  /** Run-locked operations and commits not finished yet (resumes, event fan-out): work about to become ready. */
  protected busy = 0;
  protected inflightCalls = new Set<Promise<void>>();
  protected slotUse = new Map<string, number>();
  protected queue: DueQueue;
  protected eventSeq = 0;
  protected seenIds = new Map<string, number>();
  protected stopping = false;
  protected pruneTimer: NodeJS.Timeout | undefined;
  protected syncLock: Promise<unknown> = Promise.resolve();
  protected readonly store: Store;
  protected readonly clock: Clock;
  protected readonly log: (line: string) => void;
  protected readonly maxInflight: number;
  protected readonly callTimeoutMs: number;
  protected readonly backoff: (attempt: number) => number;
  protected readonly maxRetryAfterMs: number;
  readonly mode: EngineMode;
  /** Call work id -> request id of the dispatch in flight; a checkpoint from any other dispatch is stale. */
  protected dispatches = new Map<string, string>();

  constructor(protected opts: ExecutorOptions) {
    this.store = opts.store;
    this.clock = opts.clock;
    this.log = opts.log;
    this.maxInflight = opts.maxInflight ?? 64;
    this.callTimeoutMs = opts.callTimeoutMs ?? 15 * 60_000;
    this.backoff = opts.retryBackoff ?? defaultBackoff;
    this.maxRetryAfterMs = opts.maxRetryAfterMs ?? 3_600_000;
    this.mode = opts.mode ?? "checkpoint";
    this.queue = new DueQueue(this.clock, (ids) => this.onDue(ids));
  }

  /** Dispatches due calls (dispatch.ts). */
  protected abstract pump(): void;
  /** Handles timers that came due (due.ts). */
  protected abstract onDue(ids: string[]): void;
  /** Everything an event causes (events.ts). */
  protected abstract fanOut(tx: Tx, row: EventRow): void;

  protected runLocks(): Promise<unknown>[] {
    return [...this.runs.values()].map((r) => r.lock);
  }

  protected withLock(run: RunMem, fn: () => Promise<void>): Promise<void> {
    this.busy++;
    const p = run.lock
      .then(fn)
      .catch((err) => {
        this.log(`engine error (run ${run.row.id}): ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      })
      .finally(() => {
        this.busy--;
      });
    run.lock = p;
    return p;
  }

  /** Runs `fn` under the run's lock; drops the work if its run is gone. */
  protected onRun(w: WorkRow, fn: (run: RunMem) => Promise<void>): void {
    const run = w.run_id ? this.runs.get(w.run_id) : undefined;
    if (!run) {
      const tx = new Tx();
      this.delWork(tx, w.id, undefined);
      void this.commit(tx).catch(() => {});
      return;
    }
    void this.withLock(run, async () => {
      if (!this.work.has(w.id) || TERMINAL.has(run.row.status)) return;
      await fn(run);
    });
  }

  protected scheduleDiscovery(tx: Tx, run: RunMem, attempt = 0, delay = 0): void {
    if (run.discovery) {
      // One queued/in-flight discovery at a time; if it is already in flight, ask for one more afterwards.
      run.rediscover = true;
      return;
    }
    if (run.row.disable_immediate && run.pending.size === 0) {
      // Parallelism has ended (nothing planned, waiting or in flight): the SDK may run steps inline again, so
      // checkpointing resumes instead of a plan-then-run round trip per step for the rest of the run. Inngest
      // does the same for request version 2 (executor's maybeResetForceStepPlan, inngest/inngest#3717).
      run.row.disable_immediate = false;
      tx.ch.runUpdates.push({ id: run.row.id, disable_immediate: false });
    }
    const w = workRow("call", run.row.id, "step", this.clock.now() + delay, {}, attempt);
    run.discovery = w.id;
    this.addWork(tx, w, run);
  }

  protected addMemo(tx: Tx, run: RunMem, hash: string, value: MemoValue, now: number): void {
    const memo = run.memo!;
    const stack = run.stack!;
    tx.ch.memos.push({ run_id: run.row.id, hash, pos: stack.length, value, at: now });
    memo.set(hash, value);
    stack.push(hash);
  }

  protected async ensureMemo(run: RunMem): Promise<void> {
    if (run.memo) return;
    if (!run.memoLoading) {
      run.memoLoading = this.store.loadMemos(run.row.id).then(
        (rows) => {
          run.memo = new Map(rows.map((r) => [r.hash, r.value]));
          run.stack = rows.map((r) => r.hash);
          run.memoLoading = undefined;
        },
        (err: unknown) => {
          run.memoLoading = undefined; // the next caller loads again
          throw err;
        },
      );
    }
    await run.memoLoading;
  }

  /**
   * Starts loading an idle run's memo now, while what woke it (an event's commit) is still being committed, so its
   * resume does not wait for one more Postgres round trip after it. Only a read: the resume loads it anyway.
   */
  protected prefetchMemo(run: RunMem): void {
    if (run.memo || run.memoLoading) return;
    this.ensureMemo(run).catch(() => {});
  }

  protected updateStatus(tx: Tx, run: RunMem): void {
    if (TERMINAL.has(run.row.status)) return;
    const kinds = [...run.pending.values()].map((p) => p.kind);
    let s: RunStatus;
    if (run.discovery || kinds.some((k) => k === "call" || k === "resume")) s = run.row.started_at === null ? "queued" : "running";
    else if (kinds.some((k) => k === "wait" || k === "invoke")) s = "waiting";
    else if (kinds.includes("sleep")) s = "sleeping";
    else s = "running";
    if (s === run.row.status) return;
    run.row.status = s;
    tx.ch.runUpdates.push({ id: run.row.id, status: s });
    if (s === "sleeping" || s === "waiting") {
      // An idle run gives its memo back; it is reloaded (one query) when the run resumes.
      tx.after.push(() => {
        if (run.row.status === "sleeping" || run.row.status === "waiting") {
          run.memo = null;
          run.stack = null;
          run.memoJson.clear();
        }
      });
    }
  }

  protected addWork(tx: Tx, w: WorkRow, run: RunMem | undefined): void {
    tx.ch.addWork.push(w);
    run?.workIds.add(w.id);
    tx.undo.push(() => run?.workIds.delete(w.id));
    tx.after.push(() => this.track(w));
  }

  protected delWork(tx: Tx, id: string, run: RunMem | undefined): void {
    tx.ch.delWork.push(id);
    tx.after.push(() => {
      const w = this.work.get(id);
      this.work.delete(id);
      run?.workIds.delete(id);
      if (w) this.unindex(w);
    });
  }

  /** Puts a committed work row into memory: the map, the timer heap, the listener index. */
  protected track(w: WorkRow): void {
    this.work.set(w.id, w);
    if (w.kind === "wait" || w.kind === "cancel") this.index(w);
    if (w.due_at === null) return;
    if (w.kind === "call" && w.due_at <= this.clock.now()) {
      // Hot path: a call due now skips the timer heap (a setTimeout costs a millisecond or more per step).
      this.makeReady(w);
      this.schedulePump();
      return;
    }
    if (w.kind === "resume" && w.due_at <= this.clock.now()) {
      // A matched wait (a slot's wake-up, an approval) or a finished invoke: handled in this turn of the event
      // loop, not after a timer — under a burst a timer fires one whole loop iteration later (hundreds of ms).
      this.dueNow(w.id);
      return;
    }
    this.queue.push(w.id, w.due_at);
  }

  /** Resumes due now, handled in a microtask (not yet under a run's lock): idle() counts them as work. */
  protected dueNowIds: string[] = [];

  private dueNow(id: string): void {
    this.dueNowIds.push(id);
    if (this.dueNowIds.length > 1) return;
    queueMicrotask(() => {
      const ids = this.dueNowIds;
      this.dueNowIds = [];
      if (!this.stopping) this.onDue(ids);
    });
  }

  /** Scores of the calls in `ready`, which is kept sorted by them (ties in arrival order). */
  protected readyScore = new Map<string, number>();

  /**
   * Puts a due call in the ready list, ordered as Inngest's queue orders a function's items (QueueItem.Score): a
   * first attempt that is due now scores its run's creation time, so older runs finish before newer ones start
   * (in a burst, a woken run's next call is not queued behind hundreds of new runs); a retry scores its due time.
   */
  protected makeReady(w: WorkRow): void {
    const run = w.run_id ? this.runs.get(w.run_id) : undefined;
    const score = w.attempt === 0 && run ? Math.min(run.row.created_at, w.due_at ?? run.row.created_at) : (w.due_at ?? 0);
    this.readyScore.set(w.id, score);
    const ready = this.ready;
    let lo = 0;
    let hi = ready.length;
    if (hi === 0 || (this.readyScore.get(ready[hi - 1]!) ?? 0) <= score) {
      ready.push(w.id); // the common case: appended
      return;
    }
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.readyScore.get(ready[mid]!) ?? 0) <= score) lo = mid + 1;
      else hi = mid;
    }
    ready.splice(lo, 0, w.id);
  }

  protected pumpScheduled = false;

  protected schedulePump(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    queueMicrotask(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  protected index(w: WorkRow): void {
    const name = String(w.data?.["event"] ?? "");
    let set = this.listeners.get(name);
    if (!set) this.listeners.set(name, (set = new Set()));
    set.add(w.id);
  }

  protected unindex(w: WorkRow): void {
    const name = String(w.data?.["event"] ?? "");
    const set = this.listeners.get(name);
    set?.delete(w.id);
    if (set && set.size === 0) this.listeners.delete(name);
  }

  protected listening(w: WorkRow): boolean {
    return this.listeners.get(String(w.data?.["event"] ?? ""))?.has(w.id) ?? false;
  }

  protected async commit(tx: Tx): Promise<void> {
    this.busy++;
    try {
      await this.commitNow(tx);
    } finally {
      this.busy--;
    }
  }

  private async commitNow(tx: Tx): Promise<void> {
    if (tx.waitFor.length) await Promise.all(tx.waitFor);
    for (let i = 0; ; i++) {
      try {
        await this.store.apply(tx.ch, tx.traceKey);
        break;
      } catch (err) {
        if (i >= 3) {
          for (const f of tx.undo.reverse()) f();
          throw err;
        }
        await new Promise((r) => setTimeout(r, 50 * 2 ** i));
      }
    }
    for (const f of tx.after) f();
  }
}

// ------------------------------------------------------------------ small pure helpers

export type ErrorLike = { name: string; message: string; [k: string]: unknown };

export function newRunMem(row: RunRow): RunMem {
  return {
    row,
    memo: null,
    stack: null,
    memoJson: new Map(),
    pending: new Map(),
    discovery: null,
    rediscover: false,
    workIds: new Set(),
    names: new Map(),
    lock: Promise.resolve(),
  };
}

export function workRow(
  kind: WorkKind,
  runId: string | null,
  step: string | null,
  dueAt: number | null,
  data: Record<string, unknown>,
  attempt = 0,
  functionId: string | null = null,
): WorkRow {
  return { id: ulid(), kind, run_id: runId, function_id: functionId, step, due_at: dueAt, attempt, data };
}

export function mkEvent(name: string, data: Record<string, unknown>, now: number): EngineEvent {
  return { id: ulid(), name, data, ts: now };
}

export function concurrencyKey(fn: FunctionDef, i: number, event: EngineEvent): string {
  const rule = fn.concurrency[i]!;
  const value = rule.key ? String(evaluate(rule.key, { event }) ?? "") : "";
  // fn scope: per function and rule; env/account scope: shared by every function using the same key value.
  return rule.scope === "fn" ? `fn:${fn.id}:${i}:${value}` : `env:${value}`;
}

export function cancelError(message: string): ErrorLike {
  return { name: "InngestCancelled", message };
}

export function jitter(ms: number): number {
  return ms > 0 ? Math.floor(Math.random() * ms) : 0;
}

export function parseJson(text: string): unknown {
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

export function toError(body: unknown, fallback: string): ErrorLike {
  if (body && typeof body === "object" && !Array.isArray(body)) {
    const b = body as Record<string, unknown>;
    return { ...b, name: String(b["name"] ?? "Error"), message: String(b["message"] ?? b["error"] ?? fallback) };
  }
  return { name: "Error", message: typeof body === "string" && body ? `${fallback}: ${body.slice(0, 500)}` : fallback };
}

export function errorMessage(err: unknown): string {
  if (err && typeof err === "object" && "message" in err) return String((err as { message: unknown }).message);
  return String(err);
}

export function stripNullish<T extends Record<string, unknown>>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) if (v !== null && v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}

