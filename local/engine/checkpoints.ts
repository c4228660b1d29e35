// Async checkpointing (inngest 4.x): steps the SDK ran inside a call still in flight, posted to
// POST /v1/checkpoint/{runId}/async. Memoized like the ops of a 206 and durable before they are acknowledged.
import type { CheckpointBody } from "./protocol";
import { TERMINAL } from "./store";
import { MAX_STEPS, Tx } from "./core";
import { Ops } from "./ops";
import { traceMark, tracing } from "./trace";

export abstract class Checkpoints extends Ops {
  /**
   * POST /v1/checkpoint/{runId}/async: steps the SDK ran inside a call that is still in flight. They are
   * memoized exactly like the ops of a 206, and committed before the answer, so an acknowledged step is never
   * run again. 409 (the SDK's StaleDispatchError, api.checkpointStepsAsync) when the call is not the one the
   * engine is waiting for: retried, timed out, cancelled, or from before a restart. `ack` (the HTTP answer) is called
   * once the steps are durable, before the log lines and the lock's release; the status returned is 200 then too.
   */
  async checkpoint(runId: string, body: CheckpointBody, ack?: () => void): Promise<{ status: number; error?: string }> {
    const run = this.runs.get(runId);
    if (!run) return { status: 409, error: `run ${runId} is not active` };
    let out: { status: number; error?: string } = { status: 500, error: "checkpoint not processed" };
    const key = tracing ? `${runId}:${body.steps[0]?.id}` : "";
    await this.withLock(run, async () => {
      if (tracing) traceMark(key, "locked");
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
      if (tracing) tx.traceKey = key;
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
      if (tracing) traceMark(key, "commit");
      await this.commit(tx);
      if (tracing) traceMark(key, "committed");
      out = { status: 200 };
      ack?.();
      const fnId = run.row.function_id;
      for (const l of logs) this.log(`run ${runId} ${fnId} ${l}`);
    });
    return out;
  }
}
