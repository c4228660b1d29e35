// What the SDK answered: 200 (done), 206 (ops: memos, planned steps, sleeps, waits, invokes), errors. Each
// answer becomes one committed transition.
import { checkExpression } from "./cel";
import { parseRetryAfter, sleepTarget } from "./durations";
import { ulid } from "./ids";
import { INTERNAL, opsSchema, type EngineEvent, type Op } from "./protocol";
import type { FunctionDef } from "./registry";
import { TERMINAL, type WorkRow } from "./store";
import { MAX_STEPS, Tx, workRow, parseJson, toError, type RunMem, type CallResult } from "./core";
import { Retries } from "./retries";

export abstract class Ops extends Retries {
  protected async handleResult(run: RunMem, fn: FunctionDef, w: WorkRow, res: CallResult): Promise<void> {
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

  protected async processOps(run: RunMem, fn: FunctionDef, w: WorkRow, ops: Op[], retryAfter?: number): Promise<void> {
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
}
