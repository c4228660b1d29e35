// Timers that came due: ready calls, ended sleeps, timed-out waits and invokes, resumes, cancellations,
// start/finish timeouts and cron ticks, each handed to the layer that owns it.
import type { MemoValue } from "./protocol";
import { Tx, cancelError } from "./core";
import { CronTimers } from "./cron-timers";

export abstract class DueWork extends CronTimers {
  protected onDue(ids: string[]): void {
    for (const id of ids) {
      const w = this.work.get(id);
      if (!w) continue;
      switch (w.kind) {
        case "call":
          this.makeReady(w);
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
}
