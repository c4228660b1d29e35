// The run state machine: turns events into runs, calls the SDK with the memo and the stack, and turns the ops
// it answers with (or checkpoints) into memos, timers, waits and further calls. Split by concern, one layer per
// file, each extending the one below:
//   core.ts (state, transitions) <- runs.ts <- events.ts <- retries.ts <- ops.ts <- checkpoints.ts
//   <- dispatch.ts <- cron-timers.ts <- due.ts <- pruning.ts <- executor.ts (load, stop, sync)
import { buildFunction, type FunctionDef } from "./registry";
import { DEDUPE_WINDOW, Tx, newRunMem } from "./core";
import { Pruning } from "./pruning";

export type { EngineMode, ExecutorOptions } from "./core";
export { defaultBackoff } from "./durations";

export interface SyncResult {
  ok: boolean;
  errors: string[];
  functions: string[];
}

export class Executor extends Pruning {
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
    this.startPruning();
  }

  /** Stops scheduling; waits (bounded) for calls in flight so their results are persisted. */
  async stop(graceMs = 10_000): Promise<void> {
    this.stopping = true;
    this.queue.stop();
    this.stopPruning();
    const all = Promise.allSettled([...this.inflightCalls]);
    await Promise.race([all, new Promise((r) => setTimeout(r, graceMs).unref())]);
    await Promise.allSettled(this.runLocks());
  }

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

  protected async doRegister(app: {
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
    const { remove, add } = this.cronChanges(app.appName, defs, now);
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

  /**
   * Nothing dispatching, nothing ready to dispatch, nothing being committed: every run is asleep, waiting or done.
   * What a test checks before it moves a manual clock, so that time never jumps while work admitted earlier is
   * still under way (timers that fire on the move make work ready again).
   */
  idle(): boolean {
    if (this.inflight !== 0 || this.busy !== 0 || this.pumpScheduled || this.dueNowIds.length !== 0) return false;
    // The ready list may still hold calls whose work is gone (a run that ended, a cron removed by a sync): pump()
    // drops those only when it next runs, which may be never once everything sleeps.
    return !this.ready.some((id) => {
      const w = this.work.get(id);
      return Boolean(w?.run_id && this.runs.has(w.run_id));
    });
  }

  /** Test/diagnostic view of what is in memory. */
  stats(): { runs: number; work: number; ready: number; inflight: number } {
    return { runs: this.runs.size, work: this.work.size, ready: this.ready.length, inflight: this.inflight };
  }
}
