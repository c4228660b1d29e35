// The run state machine: turns events into runs, calls the SDK with the memo and the stack, and turns the ops
// it answers with into memos, timers, waits and further calls.
//
// Concurrency model: one engine process owns the database (advisory lock). Live state is in memory; every
// transition is committed to Postgres (one `apply` round trip) before its effects become visible in memory,
// so after a crash the database describes exactly the work still to do. Results for one run are processed
// one at a time (a per-run promise chain); calls for different steps of a run can be in flight together.
import { request as httpRequest, Agent as HttpAgent, type IncomingHttpHeaders } from "node:http";
import { request as httpsRequest, Agent as HttpsAgent } from "node:https";
import { checkExpression, evaluate, matches } from "./cel";
import type { Clock } from "./clock";
import { nextCronTime } from "./cron";
import { parseRetryAfter, sleepTarget } from "./durations";
import { ulid } from "./ids";
import { INTERNAL, opsSchema, type CheckpointBody, type EngineEvent, type IncomingEvent, type MemoValue, type Op } from "./protocol";
import { buildFunction, triggerMatches, type FunctionDef } from "./registry";
import { DueQueue } from "./scheduler";
import { canonical, signRequest, verifySignature } from "./signing";
import {
  TERMINAL,
  type Changes,
  type EventRow,
  type RunRow,
  type RunStatus,
  type Store,
  type WorkKind,
  type WorkRow,
} from "./store";

const DAY = 86_400_000;
const DEDUPE_WINDOW = DAY;
const MAX_STEPS = 1000;
/** Inngest's retry schedule (pkg/backoff): 15s, 30s, 1m, 2m, 5m, 10m, 20m, 40m, 1h, 2h, plus up to 30 s jitter. */
const BACKOFF_TABLE = [15e3, 30e3, 60e3, 120e3, 300e3, 600e3, 1200e3, 2400e3, 3600e3, 7200e3];

export function defaultBackoff(attempt: number): number {
  return BACKOFF_TABLE[Math.min(attempt, BACKOFF_TABLE.length - 1)]! + Math.floor(Math.random() * 30_000);
}

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

interface Pending {
  workId: string;
  kind: WorkKind;
  race?: boolean;
}

interface RunMem {
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
class Tx {
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
}

interface CallResult {
  status: number;
  text: string;
  header: (name: string) => string | null;
  error?: string;
}

// Keep-alive connections to the app: a step costs one request, so connection setup must not.
const httpAgent = new HttpAgent({ keepAlive: true, maxSockets: 256 });
const httpsAgent = new HttpsAgent({ keepAlive: true, maxSockets: 256 });

function post(url: URL, headers: Record<string, string>, body: string, timeoutMs: number): Promise<{ status: number; headers: IncomingHttpHeaders; text: string }> {
  return new Promise((resolve, reject) => {
    const https = url.protocol === "https:";
    const req = (https ? httpsRequest : httpRequest)(
      url,
      {
        method: "POST",
        agent: https ? httpsAgent : httpAgent,
        headers: { ...headers, "content-length": String(Buffer.byteLength(body)) },
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString("utf8") }));
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on("error", reject);
    req.end(body);
  });
}

export interface SyncResult {
  ok: boolean;
  errors: string[];
  functions: string[];
}

export class Executor {
  readonly functions = new Map<string, FunctionDef>();
  private runs = new Map<string, RunMem>();
  private work = new Map<string, WorkRow>();
  /** event name -> ids of `wait` and `cancel` work listening for it */
  private listeners = new Map<string, Set<string>>();
  private waitReady = new Map<string, Promise<void>>();
  private ready: string[] = [];
  private inflight = 0;
  private inflightCalls = new Set<Promise<void>>();
  private slotUse = new Map<string, number>();
  private queue: DueQueue;
  private eventSeq = 0;
  private seenIds = new Map<string, number>();
  private stopping = false;
  private pruneTimer: NodeJS.Timeout | undefined;
  private syncLock: Promise<unknown> = Promise.resolve();
  private readonly store: Store;
  private readonly clock: Clock;
  private readonly log: (line: string) => void;
  private readonly maxInflight: number;
  private readonly callTimeoutMs: number;
  private readonly backoff: (attempt: number) => number;
  private readonly maxRetryAfterMs: number;
  readonly mode: EngineMode;
  /** Call work id -> request id of the dispatch in flight; a checkpoint from any other dispatch is stale. */
  private dispatches = new Map<string, string>();

  constructor(private opts: ExecutorOptions) {
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

  // ---------------------------------------------------------------- lifecycle

  /** Reloads functions, in-flight runs, pending work and unprocessed events, then resumes. */
  async load(): Promise<void> {
    for (const f of await this.store.loadFunctions()) {
      const { def } = buildFunction(f.config, f.app_id);
      if (def) this.functions.set(def.id, def);
    }
    for (const row of await this.store.loadActiveRuns()) this.runs.set(row.id, newRunMem(row));
    const orphans: string[] = [];
    for (const w of await this.store.loadWork()) {
      if (w.kind === "cron") {
        if (w.function_id && this.functions.has(w.function_id)) this.track(w);
        else orphans.push(w.id);
        continue;
      }
      const run = w.run_id ? this.runs.get(w.run_id) : undefined;
      if (!run) {
        orphans.push(w.id);
        continue;
      }
      run.workIds.add(w.id);
      if (w.kind === "call" && w.step === "step") run.discovery = w.id;
      else if (w.step && ["call", "sleep", "wait", "invoke", "resume"].includes(w.kind)) {
        run.pending.set(w.step, { workId: w.id, kind: w.kind });
      }
      const name = (w.data?.["name"] as string | undefined) ?? undefined;
      if (name && w.step) run.names.set(w.step, name);
      this.track(w);
    }
    if (orphans.length) await this.store.apply({ delWork: orphans });
    this.eventSeq = await this.store.maxEventSeq();
    const now = this.clock.now();
    for (const e of await this.store.recentEventIds(now - DEDUPE_WINDOW)) this.seenIds.set(e.id, e.received_at);
    // A run with nothing pending (possible only if a crash hit between writes of different runs) gets a
    // discovery call, which is always safe: the SDK replays from the memo.
    for (const run of this.runs.values()) {
      if (!run.discovery && run.pending.size === 0) {
        const tx = new Tx();
        this.scheduleDiscovery(tx, run);
        await this.commit(tx);
      }
    }
    for (const e of await this.store.loadUnprocessedEvents()) {
      const tx = new Tx();
      this.fanOut(tx, e);
      tx.ch.processed.push(e.internal_id);
      await this.commit(tx);
    }
    this.pruneTimer = setInterval(() => this.pruneSeenIds(), 60 * 60_000);
    this.pruneTimer.unref();
  }

  /** Stops scheduling; waits (bounded) for calls in flight so their results are persisted. */
  async stop(graceMs = 10_000): Promise<void> {
    this.stopping = true;
    this.queue.stop();
    if (this.pruneTimer) clearInterval(this.pruneTimer);
    const all = Promise.allSettled([...this.inflightCalls]);
    await Promise.race([all, new Promise((r) => setTimeout(r, graceMs).unref())]);
    await Promise.allSettled(this.runLocks());
  }

  private runLocks(): Promise<unknown>[] {
    return [...this.runs.values()].map((r) => r.lock);
  }

  // ---------------------------------------------------------------- sync

  async registerApp(app: {
    appName: string;
    url: string;
    framework?: string;
    sdk?: string;
    functions: unknown[];
  }): Promise<SyncResult> {
    const next = this.syncLock.then(() => this.doRegister(app));
    this.syncLock = next.catch(() => {});
    return next;
  }

  private async doRegister(app: {
    appName: string;
    url: string;
    framework?: string;
    sdk?: string;
    functions: unknown[];
  }): Promise<SyncResult> {
    const errors: string[] = [];
    const defs: FunctionDef[] = [];
    const seen = new Set<string>();
    for (const raw of app.functions) {
      const r = buildFunction(raw, app.appName);
      errors.push(...r.errors);
      if (r.def) {
        if (seen.has(r.def.id)) errors.push(`function "${r.def.id}" is registered twice`);
        seen.add(r.def.id);
        defs.push(r.def);
      }
    }
    for (const d of defs) {
      const owner = this.functions.get(d.id);
      if (owner && owner.appId !== app.appName) errors.push(`function "${d.id}" already belongs to app "${owner.appId}"`);
    }
    if (errors.length) return { ok: false, errors, functions: [] };

    const now = this.clock.now();
    // Cron timers: keep an existing timer whose schedule did not change, replace the others.
    const existing = [...this.work.values()].filter(
      (w) => w.kind === "cron" && w.function_id && this.functions.get(w.function_id)?.appId === app.appName,
    );
    const remove: WorkRow[] = [];
    const keep = new Set<string>();
    for (const w of existing) {
      const def = defs.find((d) => d.id === w.function_id);
      const spec = w.data?.["cron"];
      if (def && def.cronTriggers.some((c) => c.cron === spec) && !keep.has(`${def.id} ${spec}`)) {
        keep.add(`${def.id} ${spec}`);
      } else remove.push(w);
    }
    const add: WorkRow[] = [];
    for (const d of defs) {
      for (const c of d.cronTriggers) {
        if (keep.has(`${d.id} ${c.cron}`)) continue;
        keep.add(`${d.id} ${c.cron}`);
        const at = nextCronTime(c.cron, now);
        if (at === undefined) continue;
        add.push(workRow("cron", null, null, at + jitter(c.jitterMs), { cron: c.cron }, 0, d.id));
      }
    }
    const removedFns = await this.store.saveApp(
      { id: app.appName, url: app.url, framework: app.framework, sdk: app.sdk, syncedAt: now },
      defs.map((d) => ({ id: d.id, name: d.name, config: d.config })),
      { remove: remove.map((w) => w.id), add },
    );
    for (const id of removedFns) this.functions.delete(id);
    for (const d of defs) this.functions.set(d.id, d);
    for (const w of remove) this.work.delete(w.id);
    for (const w of add) this.track(w);
    this.log(`synced app ${app.appName} (${defs.length} functions) from ${app.url}`);
    return { ok: true, errors: [], functions: defs.map((d) => d.id) };
  }

  // ---------------------------------------------------------------- events

  /** Accepts events: persists them and, in the same transaction, starts runs, resumes waits, cancels runs. */
  async ingest(events: IncomingEvent[]): Promise<string[]> {
    const now = this.clock.now();
    const tx = new Tx();
    const ids: string[] = [];
    for (const e of events) {
      const internalId = ulid();
      const userId = e.id ?? null;
      const seenAt = userId ? this.seenIds.get(userId) : undefined;
      const duplicate = seenAt !== undefined && now - seenAt < DEDUPE_WINDOW;
      if (userId && !duplicate) {
        this.seenIds.set(userId, now);
        tx.undo.push(() => {
          if (seenAt === undefined) this.seenIds.delete(userId);
          else this.seenIds.set(userId, seenAt);
        });
      }
      const payload = {
        ...stripNullish(e),
        id: userId ?? internalId,
        name: e.name,
        data: (e.data ?? {}) as Record<string, unknown>,
        ts: e.ts ?? now,
      } as EngineEvent;
      const row: EventRow = {
        internal_id: internalId,
        seq: ++this.eventSeq,
        name: e.name,
        id: userId,
        payload,
        received_at: now,
        processed: true,
        duplicate,
      };
      tx.ch.events.push(row);
      if (duplicate) this.log(`event ${e.name} id=${userId} dropped: duplicate id within 24h`);
      else this.fanOut(tx, row);
      ids.push(internalId);
    }
    await this.commit(tx);
    return ids;
  }

  /** Everything an event causes: new runs, matched waits, cancellations. Memory claims happen now. */
  private fanOut(tx: Tx, row: EventRow): void {
    const event = row.payload;
    const now = this.clock.now();
    for (const fn of this.functions.values()) {
      for (const t of fn.eventTriggers) {
        if (!triggerMatches(t, event.name)) continue;
        if (t.expression && !matches(t.expression, { event })) continue;
        this.createRun(tx, fn, event, row.internal_id, row.seq);
        break;
      }
    }
    const set = this.listeners.get(event.name);
    if (!set) return;
    for (const id of [...set]) {
      const w = this.work.get(id);
      if (!w || !w.run_id) continue;
      const data = w.data as { if?: string; after_seq: number; name?: string };
      // Only events received after the wait (or the run, for cancelOn) was registered can match.
      if (data.after_seq >= row.seq) continue;
      const run = this.runs.get(w.run_id);
      if (!run || TERMINAL.has(run.row.status)) continue;
      if (data.if && !matches(data.if, { event: run.row.event, async: event })) continue;
      this.unindex(w);
      tx.undo.push(() => this.index(w));
      if (w.kind === "wait" && w.step) {
        const ready = this.waitReady.get(w.id);
        if (ready) tx.waitFor.push(ready);
        this.delWork(tx, w.id, run);
        const r = workRow("resume", run.row.id, w.step, now, {
          value: { data: event },
          reason: "wait.matched",
          name: data.name,
          event_id: row.internal_id,
        });
        this.addWork(tx, r, run);
        const prev = run.pending.get(w.step);
        run.pending.set(w.step, { workId: r.id, kind: "resume" });
        tx.undo.push(() => {
          if (prev) run.pending.set(w.step!, prev);
        });
      } else if (w.kind === "cancel") {
        this.delWork(tx, w.id, run);
        this.addWork(
          tx,
          workRow("cancel_run", run.row.id, null, now, {
            reason: `cancelled by event ${event.name} (${row.internal_id})`,
          }),
          run,
        );
      }
    }
  }

  private createRun(
    tx: Tx,
    fn: FunctionDef,
    event: EngineEvent,
    eventInternalId: string,
    eventSeq: number,
    parent: RunRow["parent"] = null,
  ): RunMem {
    const now = this.clock.now();
    const row: RunRow = {
      id: ulid(),
      function_id: fn.id,
      status: "queued",
      event_id: eventInternalId,
      event,
      event_seq: eventSeq,
      created_at: now,
      started_at: null,
      ended_at: null,
      output: null,
      error: null,
      disable_immediate: false,
      concurrency_keys: fn.concurrency.map((rule, i) => concurrencyKey(fn, i, event)),
      parent,
    };
    tx.ch.runs.push(row);
    const run = newRunMem(row);
    run.memo = new Map();
    run.stack = [];
    // Register the run in memory first so its work (added below) always finds it.
    tx.after.push(() => this.runs.set(row.id, run));
    tx.ch.history.push({ run_id: row.id, at: now, type: "run.queued", detail: { event_id: eventInternalId, event_name: event.name } });
    this.scheduleDiscovery(tx, run);
    for (const c of fn.cancel) {
      const w = workRow("cancel", row.id, null, c.timeoutMs ? now + c.timeoutMs : null, {
        event: c.event,
        if: c.if,
        after_seq: eventSeq,
      });
      this.addWork(tx, w, run);
    }
    if (fn.startTimeoutMs) this.addWork(tx, workRow("start_timeout", row.id, null, now + fn.startTimeoutMs, {}), run);
    return run;
  }

  // ---------------------------------------------------------------- due work

  private onDue(ids: string[]): void {
    for (const id of ids) {
      const w = this.work.get(id);
      if (!w) continue;
      switch (w.kind) {
        case "call":
          this.ready.push(id);
          break;
        case "sleep":
          this.onRun(w, (run) => this.resume(run, w, { data: null }, "sleep.done"));
          break;
        case "wait":
          if (!this.listening(w)) break;
          this.unindex(w);
          this.onRun(w, (run) => this.resume(run, w, { data: null }, "wait.timed_out"));
          break;
        case "invoke":
          this.onRun(w, (run) =>
            this.resume(
              run,
              w,
              { error: { name: "InngestInvokeTimeoutError", message: "Timed out waiting for invoked function to complete" } },
              "invoke.timed_out",
            ),
          );
          break;
        case "resume": {
          const d = w.data as { value: MemoValue; reason: string };
          this.onRun(w, (run) => this.resume(run, w, d.value, d.reason));
          break;
        }
        case "cancel": {
          // A cancelOn listener whose timeout passed: stop listening.
          this.unindex(w);
          const tx = new Tx();
          this.delWork(tx, w.id, w.run_id ? this.runs.get(w.run_id) : undefined);
          void this.commit(tx).catch((err) => this.log(`engine error: ${String(err)}`));
          break;
        }
        case "start_timeout":
          this.onRun(w, (run) =>
            this.terminate(run, "cancelled", { error: cancelError("run did not start within timeouts.start") }),
          );
          break;
        case "finish_timeout":
          this.onRun(w, (run) =>
            this.terminate(run, "cancelled", { error: cancelError("run did not finish within timeouts.finish") }),
          );
          break;
        case "cron":
          void this.fireCron(w).catch((err) => this.log(`engine error (cron): ${String(err)}`));
          break;
        case "cancel_run": {
          const reason = String(w.data?.["reason"] ?? "cancelled");
          this.onRun(w, (run) => this.terminate(run, "cancelled", { error: cancelError(reason) }));
          break;
        }
      }
    }
    this.pump();
  }

  /** Runs `fn` under the run's lock; drops the work if its run is gone. */
  private onRun(w: WorkRow, fn: (run: RunMem) => Promise<void>): void {
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

  private withLock(run: RunMem, fn: () => Promise<void>): Promise<void> {
    const p = run.lock.then(fn).catch((err) => {
      this.log(`engine error (run ${run.row.id}): ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    });
    run.lock = p;
    return p;
  }

  /** Dispatches due calls, respecting the global cap and the functions' concurrency limits. */
  private pump(): void {
    if (this.stopping) return;
    let i = 0;
    while (i < this.ready.length && this.inflight < this.maxInflight) {
      const id = this.ready[i]!;
      const w = this.work.get(id);
      const run = w?.run_id ? this.runs.get(w.run_id) : undefined;
      if (!w || !run) {
        this.ready.splice(i, 1);
        continue;
      }
      const slots = this.slotsFor(run);
      if (slots.some((s) => (this.slotUse.get(s.key) ?? 0) >= s.limit)) {
        i++;
        continue;
      }
      this.ready.splice(i, 1);
      for (const s of slots) this.slotUse.set(s.key, (this.slotUse.get(s.key) ?? 0) + 1);
      this.inflight++;
      const p: Promise<void> = this.executeCall(run, w)
        .catch((err) => this.log(`engine error (call ${run.row.id}): ${String(err)}`))
        .finally(() => {
          for (const s of slots) this.slotUse.set(s.key, (this.slotUse.get(s.key) ?? 1) - 1);
          this.inflight--;
          this.inflightCalls.delete(p);
          this.pump();
        });
      this.inflightCalls.add(p);
    }
  }

  private slotsFor(run: RunMem): { key: string; limit: number }[] {
    const fn = this.functions.get(run.row.function_id);
    if (!fn) return [];
    return fn.concurrency.map((rule, i) => ({
      key: run.row.concurrency_keys[i] ?? concurrencyKey(fn, i, run.row.event),
      limit: rule.limit,
    }));
  }

  // ---------------------------------------------------------------- calls

  private async executeCall(run: RunMem, w: WorkRow): Promise<void> {
    if (!this.work.has(w.id) || TERMINAL.has(run.row.status)) return;
    const fn = this.functions.get(run.row.function_id);
    if (!fn) {
      await this.withLock(run, () =>
        this.terminate(run, "failed", {
          error: { name: "Error", message: `function "${run.row.function_id}" is no longer registered` },
        }),
      );
      return;
    }
    if (run.row.started_at === null) await this.withLock(run, () => this.startRun(run, fn));
    if (TERMINAL.has(run.row.status) || !this.work.has(w.id)) return;
    await this.ensureMemo(run);
    const memo = run.memo!;
    const stack = run.stack!;
    const ctx = {
      run_id: run.row.id,
      attempt: w.attempt,
      max_attempts: fn.maxAttempts,
      disable_immediate_execution: run.row.disable_immediate,
      use_api: false,
      stack: { stack: stack.slice(), current: stack.length },
      // Checkpointing mode (InngestCommHandler.runStep -> InngestFunction.shouldAsyncCheckpoint): fn_id switches
      // the SDK to AsyncCheckpointing, qi_id names this queue item in its checkpoint calls.
      ...(this.mode === "checkpoint" ? { fn_id: fn.id, qi_id: w.id } : {}),
    };
    let body: string;
    let signature: string | undefined;
    const key = this.opts.signingKey;
    if (key) {
      // Signed mode: send the JCS text itself, so what is signed is exactly what is sent.
      const steps: Record<string, MemoValue> = {};
      for (const h of stack) steps[h] = memo.get(h)!;
      body = canonical({ version: 2, event: run.row.event, events: [run.row.event], steps, ctx });
      signature = signRequest(body, key);
    } else {
      const eventJson = JSON.stringify(run.row.event);
      const parts: string[] = [];
      for (const h of stack) {
        let j = run.memoJson.get(h);
        if (j === undefined) run.memoJson.set(h, (j = JSON.stringify(memo.get(h))));
        parts.push(`${JSON.stringify(h)}:${j}`);
      }
      body = `{"version":2,"event":${eventJson},"events":[${eventJson}],"steps":{${parts.join(",")}},"ctx":${JSON.stringify(ctx)}}`;
    }
    // A fresh id per dispatch (sent as x-request-id, echoed by the SDK as request_id in its checkpoints): after a
    // retry or an engine restart, checkpoints of the old dispatch no longer match and are answered 409.
    const requestId = ulid();
    this.dispatches.set(w.id, requestId);
    try {
      const res = await this.callSdk(fn, w.step ?? "step", body, signature, requestId);
      await this.withLock(run, () => this.handleResult(run, fn, w, res));
    } finally {
      if (this.dispatches.get(w.id) === requestId) this.dispatches.delete(w.id);
    }
  }

  /**
   * POST /v1/checkpoint/{runId}/async: steps the SDK ran inside a call that is still in flight. They are
   * memoized exactly like the ops of a 206, and committed before the answer, so an acknowledged step is never
   * run again. 409 (the SDK's StaleDispatchError, api.checkpointStepsAsync) when the call is not the one the
   * engine is waiting for: retried, timed out, cancelled, or from before a restart.
   */
  async checkpoint(runId: string, body: CheckpointBody): Promise<{ status: number; error?: string }> {
    const run = this.runs.get(runId);
    if (!run) return { status: 409, error: `run ${runId} is not active` };
    let out: { status: number; error?: string } = { status: 500, error: "checkpoint not processed" };
    await this.withLock(run, async () => {
      const w = this.work.get(body.qi_id);
      const current = this.dispatches.get(body.qi_id);
      if (
        TERMINAL.has(run.row.status) ||
        !w ||
        w.kind !== "call" ||
        w.run_id !== runId ||
        !current ||
        (body.request_id && body.request_id !== current) ||
        body.fn_id !== run.row.function_id
      ) {
        out = { status: 409, error: `stale dispatch for run ${runId}` };
        return;
      }
      for (const op of body.steps) {
        if (op.op !== "StepRun" && op.op !== "Step") {
          out = { status: 400, error: `op ${op.op} cannot be checkpointed by the local engine` };
          return;
        }
      }
      await this.ensureMemo(run);
      const memo = run.memo!;
      const now = this.clock.now();
      const tx = new Tx();
      const logs: string[] = [];
      for (const op of body.steps) {
        const name = op.displayName ?? op.userland?.id ?? op.name ?? op.id;
        run.names.set(op.id, name);
        if (memo.has(op.id)) continue;
        this.addMemo(tx, run, op.id, { data: op.data ?? null }, now);
        tx.ch.history.push({ run_id: runId, at: now, type: "step.completed", step: op.id, name, detail: { checkpointed: true } });
        logs.push(`step "${name}" completed (checkpoint)`);
      }
      if (run.stack!.length > MAX_STEPS) {
        await this.terminate(run, "failed", { error: { name: "Error", message: `run exceeded ${MAX_STEPS} steps` } }, tx);
        out = { status: 409, error: `run ${runId} exceeded ${MAX_STEPS} steps` };
        return;
      }
      await this.commit(tx);
      const fnId = run.row.function_id;
      for (const l of logs) this.log(`run ${runId} ${fnId} ${l}`);
      out = { status: 200 };
    });
    return out;
  }

  private async callSdk(fn: FunctionDef, stepId: string, body: string, signature?: string, requestId?: string): Promise<CallResult> {
    const url = new URL(fn.url);
    url.searchParams.set("stepId", stepId);
    const headers: Record<string, string> = {
      "content-type": "application/json",
      "x-inngest-server-kind": this.opts.signingKey ? "cloud" : "dev",
    };
    if (signature) headers["x-inngest-signature"] = signature;
    if (requestId) headers["x-request-id"] = requestId;
    let res: { status: number; headers: IncomingHttpHeaders; text: string };
    try {
      res = await post(url, headers, body, this.callTimeoutMs);
    } catch (err) {
      const code = (err as { code?: string }).code;
      return {
        status: 0,
        text: "",
        header: () => null,
        error: `request to ${url.origin}${url.pathname} failed: ${(err as Error).message}${code ? ` (${code})` : ""}`,
      };
    }
    const header = (name: string) => {
      const v = res.headers[name.toLowerCase()];
      return v === undefined ? null : Array.isArray(v) ? (v[0] ?? null) : v;
    };
    // In cloud mode the SDK signs its answer; an unsigned or badly signed answer is not trusted.
    const key = this.opts.signingKey;
    if (key && res.status !== 401 && !verifySignature(header("x-inngest-signature"), res.text, key)) {
      return {
        status: 0,
        text: res.text,
        header,
        error: `the app's response (HTTP ${res.status}) has a missing or invalid X-Inngest-Signature`,
      };
    }
    return { status: res.status, text: res.text, header };
  }

  private async startRun(run: RunMem, fn: FunctionDef): Promise<void> {
    if (run.row.started_at !== null || TERMINAL.has(run.row.status)) return;
    const now = this.clock.now();
    const tx = new Tx();
    run.row.started_at = now;
    tx.ch.runUpdates.push({ id: run.row.id, started_at: now, status: "running" });
    run.row.status = "running";
    for (const id of run.workIds) {
      if (this.work.get(id)?.kind === "start_timeout") this.delWork(tx, id, run);
    }
    if (fn.finishTimeoutMs) this.addWork(tx, workRow("finish_timeout", run.row.id, null, now + fn.finishTimeoutMs, {}), run);
    tx.ch.history.push({ run_id: run.row.id, at: now, type: "run.started" });
    await this.commit(tx);
    this.log(`run ${run.row.id} ${fn.id} started (event ${run.row.event.name})`);
  }

  private async handleResult(run: RunMem, fn: FunctionDef, w: WorkRow, res: CallResult): Promise<void> {
    if (TERMINAL.has(run.row.status) || !this.work.has(w.id) || !this.runs.has(run.row.id)) return;
    if (run.discovery === w.id) run.discovery = null;
    const noRetry = res.header("x-inngest-no-retry") === "true";
    const retryAfter = this.boundRetryAfter(parseRetryAfter(res.header("retry-after"), Date.now()));
    if (res.error) return this.retryCall(run, fn, w, { name: "Error", message: res.error }, retryAfter);
    if (res.status === 200) {
      return this.terminate(run, "completed", { output: parseJson(res.text) }, undefined);
    }
    if (res.status === 206) {
      const parsed = opsSchema.safeParse(parseJson(res.text));
      if (!parsed.success) {
        return this.retryCall(run, fn, w, { name: "Error", message: `invalid ops from the SDK: ${parsed.error.message}` }, retryAfter);
      }
      return this.processOps(run, fn, w, parsed.data, retryAfter);
    }
    const bodyErr = toError(parseJson(res.text), `HTTP ${res.status} from the app`);
    if (noRetry && res.status >= 400) return this.terminate(run, "failed", { error: bodyErr });
    if (res.status === 401) {
      bodyErr.message = `the app refused the engine's request (401): check that the app and the engine share the same signing key (${bodyErr.message})`;
    }
    return this.retryCall(run, fn, w, bodyErr, retryAfter);
  }

  private boundRetryAfter(ms: number | undefined): number | undefined {
    return ms === undefined ? undefined : Math.min(Math.max(ms, 0), this.maxRetryAfterMs);
  }

  /** Retries a call (function-level or step-level) with backoff, or fails the run when attempts are spent. */
  private async retryCall(run: RunMem, fn: FunctionDef, w: WorkRow, error: ErrorLike, retryAfter?: number): Promise<void> {
    const next = w.attempt + 1;
    if (next >= fn.maxAttempts) return this.terminate(run, "failed", { error });
    const now = this.clock.now();
    const tx = new Tx();
    this.delWork(tx, w.id, run);
    const nw = workRow("call", run.row.id, w.step, now + (retryAfter ?? this.backoff(w.attempt)), w.data ?? {}, next);
    this.addWork(tx, nw, run);
    if (w.step === "step" || !w.step) run.discovery = nw.id;
    else run.pending.set(w.step, { workId: nw.id, kind: "call", race: run.pending.get(w.step)?.race });
    tx.ch.history.push({
      run_id: run.row.id,
      at: now,
      type: "run.retrying",
      step: w.step === "step" ? null : w.step,
      name: w.step ? (run.names.get(w.step) ?? null) : null,
      detail: { attempt: next, retry_at: new Date(nw.due_at!).toISOString(), error },
    });
    this.updateStatus(tx, run);
    await this.commit(tx);
    this.log(`run ${run.row.id} ${fn.id} attempt ${w.attempt} failed, retry ${next} at ${new Date(nw.due_at!).toISOString()}: ${error.message}`);
  }

  private async processOps(run: RunMem, fn: FunctionDef, w: WorkRow, ops: Op[], retryAfter?: number): Promise<void> {
    const requested = w.step && w.step !== "step" ? w.step : undefined;
    if (requested && !ops.some((o) => o.id === requested)) {
      return this.retryCall(run, fn, w, { name: "Error", message: `the SDK did not run requested step ${requested}` }, retryAfter);
    }
    await this.ensureMemo(run);
    const memo = run.memo!;
    const now = this.clock.now();
    const tx = new Tx();
    const runId = run.row.id;
    this.delWork(tx, w.id, run);
    if (requested && run.pending.get(requested)?.workId === w.id) run.pending.delete(requested);
    if (ops.length > 1 && !run.row.disable_immediate) {
      // Parallel steps seen: from now on the SDK plans steps instead of running them inline (as Inngest does).
      run.row.disable_immediate = true;
      tx.ch.runUpdates.push({ id: runId, disable_immediate: true });
    }
    let settled = false;
    let race = false;
    const logs: string[] = [];
    const known = (id: string) => memo.has(id) || run.pending.has(id);
    for (const op of ops) {
      const name = op.displayName ?? op.userland?.id ?? op.name ?? op.id;
      run.names.set(op.id, name);
      const opts = (op.opts ?? {}) as Record<string, unknown>;
      const hist = (type: string, detail?: unknown) =>
        tx.ch.history.push({ run_id: runId, at: now, type, step: op.id, name, detail: detail ?? null });
      switch (op.op) {
        case "StepRun":
        case "Step": {
          if (!memo.has(op.id)) {
            this.addMemo(tx, run, op.id, { data: op.data ?? null }, now);
            hist("step.completed");
            logs.push(`step "${name}" completed`);
          }
          race ||= run.pending.get(op.id)?.race === true || opts["parallelMode"] === "race";
          run.pending.delete(op.id);
          settled = true;
          break;
        }
        case "StepError": {
          const attempt = !requested || requested === op.id ? w.attempt : 0;
          if (attempt + 1 >= fn.maxAttempts) {
            if (!memo.has(op.id)) this.addMemo(tx, run, op.id, { error: op.error ?? null }, now);
            run.pending.delete(op.id);
            settled = true;
            hist("step.failed", { error: op.error, attempt });
            logs.push(`step "${name}" failed for good`);
            break;
          }
          const at = now + (retryAfter ?? this.backoff(attempt));
          const nw = workRow("call", runId, op.id, at, { name }, attempt + 1);
          this.addWork(tx, nw, run);
          run.pending.set(op.id, { workId: nw.id, kind: "call", race: opts["parallelMode"] === "race" });
          hist("step.errored", { error: op.error, attempt, retry_at: new Date(at).toISOString() });
          logs.push(`step "${name}" errored (attempt ${attempt}), retry at ${new Date(at).toISOString()}`);
          break;
        }
        case "StepFailed": {
          if (!memo.has(op.id)) this.addMemo(tx, run, op.id, { error: op.error ?? null }, now);
          race ||= opts["parallelMode"] === "race";
          run.pending.delete(op.id);
          settled = true;
          hist("step.failed", { error: op.error, attempt: w.attempt });
          logs.push(`step "${name}" failed for good`);
          break;
        }
        case "StepPlanned": {
          if (known(op.id)) break;
          const nw = workRow("call", runId, op.id, now, { name }, 0);
          this.addWork(tx, nw, run);
          run.pending.set(op.id, { workId: nw.id, kind: "call", race: opts["parallelMode"] === "race" });
          hist("step.planned");
          break;
        }
        case "Sleep": {
          if (known(op.id)) break;
          let at: number;
          try {
            at = sleepTarget(op.name ?? "", now);
          } catch (err) {
            return this.terminate(run, "failed", { error: { name: "Error", message: (err as Error).message } }, tx);
          }
          const nw = workRow("sleep", runId, op.id, at, { name });
          this.addWork(tx, nw, run);
          run.pending.set(op.id, { workId: nw.id, kind: "sleep" });
          hist("step.sleeping", { until: new Date(at).toISOString() });
          logs.push(`sleeping until ${new Date(at).toISOString()} ("${name}")`);
          break;
        }
        case "WaitForEvent": {
          if (known(op.id)) break;
          const timeout = typeof opts["timeout"] === "string" ? (opts["timeout"] as string) : undefined;
          const cond = typeof opts["if"] === "string" ? (opts["if"] as string) : undefined;
          let at: number | null = null;
          try {
            // A duration ("24h") or, when the app passed a Date, an absolute ISO time (the SDK's timeStr).
            if (timeout) at = sleepTarget(timeout, now);
            if (cond) checkExpression(cond);
          } catch (err) {
            return this.terminate(
              run,
              "failed",
              { error: { name: "Error", message: `waitForEvent "${name}": ${(err as Error).message}` } },
              tx,
            );
          }
          const nw = workRow("wait", runId, op.id, at, { name, event: op.name, if: cond, after_seq: this.eventSeq });
          this.addWork(tx, nw, run);
          // Listen from this instant (see fanOut): an event that arrives while this transition is being
          // written can already match, but its own write waits for this one.
          this.work.set(nw.id, nw);
          this.index(nw);
          let resolveReady!: () => void;
          this.waitReady.set(nw.id, new Promise<void>((r) => (resolveReady = r)));
          tx.after.push(() => {
            this.waitReady.delete(nw.id);
            resolveReady();
          });
          tx.undo.push(() => {
            this.unindex(nw);
            this.work.delete(nw.id);
            this.waitReady.delete(nw.id);
            resolveReady();
          });
          run.pending.set(op.id, { workId: nw.id, kind: "wait" });
          hist("step.waiting", { event: op.name, if: cond ?? null, timeout_at: at === null ? null : new Date(at).toISOString() });
          logs.push(`waiting for ${op.name}${at ? ` until ${new Date(at).toISOString()}` : ""} ("${name}")`);
          break;
        }
        case "InvokeFunction": {
          if (known(op.id)) break;
          const targetId = String(opts["function_id"] ?? "");
          const target = this.functions.get(targetId);
          if (!target) {
            this.addMemo(tx, run, op.id, { error: { name: "Error", message: `could not find function "${targetId}" to invoke` } }, now);
            settled = true;
            hist("step.failed", { error: `function ${targetId} not found` });
            break;
          }
          const payload = (opts["payload"] ?? {}) as { data?: Record<string, unknown>; v?: string };
          const internalId = ulid();
          const childEvent: EngineEvent = {
            id: internalId,
            name: INTERNAL.invoked,
            data: {
              ...(payload.data ?? {}),
              _inngest: {
                source_app_id: fn.appId,
                source_fn_id: fn.id,
                source_run_id: runId,
                correlation_id: `${runId}.${op.id}`,
              },
            },
            ts: now,
            ...(payload.v ? { v: payload.v } : {}),
          };
          const seq = ++this.eventSeq;
          tx.ch.events.push({
            internal_id: internalId,
            seq,
            name: childEvent.name,
            id: null,
            payload: childEvent,
            received_at: now,
            processed: true,
            duplicate: false,
          });
          const child = this.createRun(tx, target, childEvent, internalId, seq, { run_id: runId, step: op.id });
          let at: number | null = null;
          if (typeof opts["timeout"] === "string" && opts["timeout"]) at = sleepTarget(opts["timeout"] as string, now);
          const nw = workRow("invoke", runId, op.id, at, { name, child_run_id: child.row.id });
          this.addWork(tx, nw, run);
          run.pending.set(op.id, { workId: nw.id, kind: "invoke" });
          hist("step.invoking", { function_id: targetId, child_run_id: child.row.id });
          logs.push(`invoking ${targetId} as run ${child.row.id} ("${name}")`);
          break;
        }
        case "RunComplete":
          return this.terminate(run, "completed", { output: op.data ?? null }, tx);
        default:
          return this.terminate(
            run,
            "failed",
            {
              error: {
                name: "Error",
                message: `step "${name}" uses op ${op.op}, which the local Inngest engine does not implement`,
              },
            },
            tx,
          );
      }
    }
    if (run.stack!.length > MAX_STEPS) {
      return this.terminate(run, "failed", { error: { name: "Error", message: `run exceeded ${MAX_STEPS} steps` } }, tx);
    }
    if (settled && (run.pending.size === 0 || race)) this.scheduleDiscovery(tx, run);
    if (run.rediscover && !run.discovery) {
      run.rediscover = false;
      this.scheduleDiscovery(tx, run);
    }
    if (!run.discovery && run.pending.size === 0) {
      // The SDK answered without anything new to do; ask again (counts as a failed attempt).
      if (w.attempt + 1 >= fn.maxAttempts) {
        return this.terminate(run, "failed", { error: { name: "Error", message: "the SDK reported no progress" } }, tx);
      }
      this.scheduleDiscovery(tx, run, w.attempt + 1, this.backoff(w.attempt));
    }
    this.updateStatus(tx, run);
    await this.commit(tx);
    for (const l of logs) this.log(`run ${runId} ${fn.id} ${l}`);
  }

  private scheduleDiscovery(tx: Tx, run: RunMem, attempt = 0, delay = 0): void {
    if (run.discovery) {
      // One queued/in-flight discovery at a time; if it is already in flight, ask for one more afterwards.
      run.rediscover = true;
      return;
    }
    const w = workRow("call", run.row.id, "step", this.clock.now() + delay, {}, attempt);
    run.discovery = w.id;
    this.addWork(tx, w, run);
  }

  /** A sleep ended, a wait matched or timed out, an invoked run finished: memoize and move on. */
  private async resume(run: RunMem, w: WorkRow, value: MemoValue, reason: string): Promise<void> {
    await this.ensureMemo(run);
    const tx = new Tx();
    const now = this.clock.now();
    this.delWork(tx, w.id, run);
    const hash = w.step!;
    if (!run.memo!.has(hash)) {
      this.addMemo(tx, run, hash, value, now);
      const name = run.names.get(hash) ?? (w.data?.["name"] as string | undefined) ?? null;
      const detail: Record<string, unknown> = {};
      if (w.data?.["event_id"]) detail["event_id"] = w.data["event_id"];
      if ("error" in value) detail["error"] = value.error;
      tx.ch.history.push({ run_id: run.row.id, at: now, type: reason, step: hash, name, detail });
    }
    if (run.pending.get(hash)?.workId === w.id) run.pending.delete(hash);
    if (run.pending.size === 0) this.scheduleDiscovery(tx, run);
    this.updateStatus(tx, run);
    await this.commit(tx);
    this.log(`run ${run.row.id} ${run.row.function_id} ${reason.replace(".", " ")} ("${run.names.get(hash) ?? hash}")`);
  }

  /** Ends a run: completed, failed or cancelled. Emits inngest/function.* events and answers an invoking run. */
  private async terminate(
    run: RunMem,
    status: Extract<RunStatus, "completed" | "failed" | "cancelled">,
    result: { output?: unknown; error?: ErrorLike | unknown },
    existing?: Tx,
  ): Promise<void> {
    if (TERMINAL.has(run.row.status)) return;
    const tx = existing ?? new Tx();
    const now = this.clock.now();
    const id = run.row.id;
    run.row.status = status;
    run.row.ended_at = now;
    const upd: Changes["runUpdates"] = [{ id, status, ended_at: now }];
    if (status === "completed") Object.assign(upd[0]!, { output: result.output ?? null });
    else Object.assign(upd[0]!, { error: result.error ?? null });
    tx.ch.runUpdates.push(...upd);
    for (const wid of [...run.workIds]) this.delWork(tx, wid, run);
    tx.ch.history.push({
      run_id: id,
      at: now,
      type: `run.${status}`,
      detail: status === "completed" ? null : { error: result.error ?? null },
    });
    const base = { function_id: run.row.function_id, run_id: id, event: run.row.event };
    const internal: EngineEvent[] = [];
    if (status === "completed") internal.push(mkEvent(INTERNAL.finished, { ...base, result: result.output ?? null }, now));
    if (status === "failed") {
      internal.push(mkEvent(INTERNAL.failed, { ...base, error: result.error }, now));
      internal.push(mkEvent(INTERNAL.finished, { ...base, error: result.error }, now));
    }
    if (status === "cancelled") internal.push(mkEvent(INTERNAL.cancelled, { ...base, error: result.error }, now));
    const rows: EventRow[] = internal.map((e) => ({
      internal_id: e.id,
      seq: ++this.eventSeq,
      name: e.name,
      id: null,
      payload: e,
      received_at: now,
      processed: false,
      duplicate: false,
    }));
    tx.ch.events.push(...rows);
    // Answer the parent of an invoked run.
    const parent = run.row.parent;
    const parentRun = parent ? this.runs.get(parent.run_id) : undefined;
    if (parent && parentRun && parentRun.pending.get(parent.step)?.kind === "invoke") {
      const inv = parentRun.pending.get(parent.step)!;
      this.delWork(tx, inv.workId, parentRun);
      const value: MemoValue =
        status === "completed"
          ? { data: result.output ?? null }
          : { error: status === "failed" ? result.error : cancelError("invoked function was cancelled") };
      const r = workRow("resume", parent.run_id, parent.step, now, { value, reason: "invoke.finished", child_run_id: id });
      this.addWork(tx, r, parentRun);
      parentRun.pending.set(parent.step, { workId: r.id, kind: "resume" });
    }
    tx.after.push(() => this.runs.delete(id));
    await this.commit(tx);
    const msg = status === "completed" ? "" : `: ${errorMessage(result.error)}`;
    this.log(`run ${id} ${run.row.function_id} ${status}${msg}`);
    // Fan the internal events out in their own transaction; if we crash first, load() replays them.
    for (const row of rows) {
      const t2 = new Tx();
      this.fanOut(t2, row);
      t2.ch.processed.push(row.internal_id);
      await this.commit(t2);
    }
  }

  private async fireCron(w: WorkRow): Promise<void> {
    const fn = w.function_id ? this.functions.get(w.function_id) : undefined;
    const spec = String(w.data?.["cron"] ?? "");
    const tx = new Tx();
    this.delWork(tx, w.id, undefined);
    const trig = fn?.cronTriggers.find((c) => c.cron === spec);
    if (fn && trig) {
      const now = this.clock.now();
      const event = mkEvent(INTERNAL.cron, { cron: spec }, now);
      const seq = ++this.eventSeq;
      tx.ch.events.push({ internal_id: event.id, seq, name: event.name, id: null, payload: event, received_at: now, processed: true, duplicate: false });
      this.createRun(tx, fn, event, event.id, seq);
      // Missed ticks (engine down) are not back-filled, as in Inngest: the next tick is after now.
      const next = nextCronTime(spec, Math.max(now, w.due_at ?? now));
      if (next !== undefined) this.addWork(tx, workRow("cron", null, null, next + jitter(trig.jitterMs), { cron: spec }, 0, fn.id), undefined);
      this.log(`cron ${spec} fired for ${fn.id}`);
    }
    await this.commit(tx);
  }

  // ---------------------------------------------------------------- helpers

  private addMemo(tx: Tx, run: RunMem, hash: string, value: MemoValue, now: number): void {
    const memo = run.memo!;
    const stack = run.stack!;
    tx.ch.memos.push({ run_id: run.row.id, hash, pos: stack.length, value, at: now });
    memo.set(hash, value);
    stack.push(hash);
  }

  private async ensureMemo(run: RunMem): Promise<void> {
    if (run.memo) return;
    if (!run.memoLoading) {
      run.memoLoading = this.store.loadMemos(run.row.id).then((rows) => {
        run.memo = new Map(rows.map((r) => [r.hash, r.value]));
        run.stack = rows.map((r) => r.hash);
        run.memoLoading = undefined;
      });
    }
    await run.memoLoading;
  }

  private updateStatus(tx: Tx, run: RunMem): void {
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

  private addWork(tx: Tx, w: WorkRow, run: RunMem | undefined): void {
    tx.ch.addWork.push(w);
    run?.workIds.add(w.id);
    tx.undo.push(() => run?.workIds.delete(w.id));
    tx.after.push(() => this.track(w));
  }

  private delWork(tx: Tx, id: string, run: RunMem | undefined): void {
    tx.ch.delWork.push(id);
    tx.after.push(() => {
      const w = this.work.get(id);
      this.work.delete(id);
      run?.workIds.delete(id);
      if (w) this.unindex(w);
    });
  }

  /** Puts a committed work row into memory: the map, the timer heap, the listener index. */
  private track(w: WorkRow): void {
    this.work.set(w.id, w);
    if (w.kind === "wait" || w.kind === "cancel") this.index(w);
    if (w.due_at === null) return;
    if (w.kind === "call" && w.due_at <= this.clock.now()) {
      // Hot path: a call due now skips the timer heap (a setTimeout costs a millisecond or more per step).
      this.ready.push(w.id);
      this.schedulePump();
      return;
    }
    this.queue.push(w.id, w.due_at);
  }

  private pumpScheduled = false;
  private schedulePump(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    queueMicrotask(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  private index(w: WorkRow): void {
    const name = String(w.data?.["event"] ?? "");
    let set = this.listeners.get(name);
    if (!set) this.listeners.set(name, (set = new Set()));
    set.add(w.id);
  }

  private unindex(w: WorkRow): void {
    const name = String(w.data?.["event"] ?? "");
    const set = this.listeners.get(name);
    set?.delete(w.id);
    if (set && set.size === 0) this.listeners.delete(name);
  }

  private listening(w: WorkRow): boolean {
    return this.listeners.get(String(w.data?.["event"] ?? ""))?.has(w.id) ?? false;
  }

  private async commit(tx: Tx): Promise<void> {
    if (tx.waitFor.length) await Promise.all(tx.waitFor);
    for (let i = 0; ; i++) {
      try {
        await this.store.apply(tx.ch);
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

  private pruneSeenIds(): void {
    const cutoff = this.clock.now() - DEDUPE_WINDOW;
    for (const [id, at] of this.seenIds) if (at < cutoff) this.seenIds.delete(id);
  }

  /** Test/diagnostic view of what is in memory. */
  stats(): { runs: number; work: number; ready: number; inflight: number } {
    return { runs: this.runs.size, work: this.work.size, ready: this.ready.length, inflight: this.inflight };
  }
}

// ------------------------------------------------------------------ small pure helpers

type ErrorLike = { name: string; message: string; [k: string]: unknown };

function newRunMem(row: RunRow): RunMem {
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

function workRow(
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

function mkEvent(name: string, data: Record<string, unknown>, now: number): EngineEvent {
  return { id: ulid(), name, data, ts: now };
}

function concurrencyKey(fn: FunctionDef, i: number, event: EngineEvent): string {
  const rule = fn.concurrency[i]!;
  const value = rule.key ? String(evaluate(rule.key, { event }) ?? "") : "";
  // fn scope: per function and rule; env/account scope: shared by every function using the same key value.
  return rule.scope === "fn" ? `fn:${fn.id}:${i}:${value}` : `env:${value}`;
}

function cancelError(message: string): ErrorLike {
  return { name: "InngestCancelled", message };
}

function jitter(ms: number): number {
  return ms > 0 ? Math.floor(Math.random() * ms) : 0;
}

function parseJson(text: string): unknown {
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function toError(body: unknown, fallback: string): ErrorLike {
  if (body && typeof body === "object" && !Array.isArray(body)) {
    const b = body as Record<string, unknown>;
    return { ...b, name: String(b["name"] ?? "Error"), message: String(b["message"] ?? b["error"] ?? fallback) };
  }
  return { name: "Error", message: typeof body === "string" && body ? `${fallback}: ${body.slice(0, 500)}` : fallback };
}

function errorMessage(err: unknown): string {
  if (err && typeof err === "object" && "message" in err) return String((err as { message: unknown }).message);
  return String(err);
}

function stripNullish<T extends Record<string, unknown>>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) if (v !== null && v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}
