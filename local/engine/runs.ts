// A run's life: created by an event (or an invoke, a cron tick), started by its first call, resumed when a
// sleep, wait or invoke ends, and terminated (completed, failed, cancelled) with its inngest/function.* events.
import { ulid } from "./ids";
import { INTERNAL, type EngineEvent, type MemoValue } from "./protocol";
import type { FunctionDef } from "./registry";
import { TERMINAL, type Changes, type EventRow, type RunRow, type RunStatus, type WorkRow } from "./store";
import { Tx, newRunMem, workRow, mkEvent, concurrencyKey, cancelError, errorMessage, type RunMem, type ErrorLike } from "./core";
import { EngineCore } from "./core";

export abstract class RunLifecycle extends EngineCore {
  protected createRun(
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

  protected async startRun(run: RunMem, fn: FunctionDef): Promise<void> {
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

  /** A sleep ended, a wait matched or timed out, an invoked run finished: memoize and move on. */
  protected async resume(run: RunMem, w: WorkRow, value: MemoValue, reason: string): Promise<void> {
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
  protected async terminate(
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
}
