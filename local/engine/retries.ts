// Retries of a call (function-level or step-level): Inngest's backoff table or the app's retry-after, until
// the function's attempts are spent.
import type { FunctionDef } from "./registry";
import type { WorkRow } from "./store";
import { Tx, workRow, type RunMem, type ErrorLike } from "./core";
import { Events } from "./events";

export abstract class Retries extends Events {
  protected boundRetryAfter(ms: number | undefined): number | undefined {
    return ms === undefined ? undefined : Math.min(Math.max(ms, 0), this.maxRetryAfterMs);
  }

  /** Retries a call (function-level or step-level) with backoff, or fails the run when attempts are spent. */
  protected async retryCall(run: RunMem, fn: FunctionDef, w: WorkRow, error: ErrorLike, retryAfter?: number): Promise<void> {
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
}
