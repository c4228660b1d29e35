// Calls to the app: picks due calls within the global cap and the functions' concurrency limits, builds the
// request (memo, stack, ctx; signed in cloud mode) and hands the answer to ops.ts under the run's lock.
import { request as httpRequest, Agent as HttpAgent, type IncomingHttpHeaders } from "node:http";
import { request as httpsRequest, Agent as HttpsAgent } from "node:https";
import { ulid } from "./ids";
import type { MemoValue } from "./protocol";
import type { FunctionDef } from "./registry";
import { canonical, signRequest, verifySignature } from "./signing";
import { TERMINAL, type WorkRow } from "./store";
import { concurrencyKey, type RunMem, type CallResult } from "./core";
import { Checkpoints } from "./checkpoints";

// Keep-alive connections to the app: a step costs one request, so connection setup must not.
const httpAgent = new HttpAgent({ keepAlive: true, maxSockets: 256 });
const httpsAgent = new HttpsAgent({ keepAlive: true, maxSockets: 256 });

type Answer = { status: number; headers: IncomingHttpHeaders; text: string };

/**
 * One POST; when a reused keep-alive socket turns out to be closed by the app (it restarted: ECONNRESET before
 * any answer), sent once more on a fresh connection, as Node's docs advise (`request.reusedSocket`). That
 * second try then meets the app, or a refused connection (the app is not listening: not an attempt).
 */
async function post(url: URL, headers: Record<string, string>, body: string, timeoutMs: number): Promise<Answer> {
  try {
    return await postOnce(url, headers, body, timeoutMs, false);
  } catch (err) {
    if ((err as { reused?: boolean; code?: string }).reused && (err as { code?: string }).code === "ECONNRESET") {
      return postOnce(url, headers, body, timeoutMs, true);
    }
    throw err;
  }
}

function postOnce(url: URL, headers: Record<string, string>, body: string, timeoutMs: number, fresh: boolean): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const https = url.protocol === "https:";
    const req = (https ? httpsRequest : httpRequest)(
      url,
      {
        method: "POST",
        // A fresh connection when retrying after a stale keep-alive socket.
        agent: fresh ? false : https ? httpsAgent : httpAgent,
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
    req.on("error", (err) => reject(Object.assign(err, { reused: req.reusedSocket })));
    req.end(body);
  });
}

export abstract class Dispatch extends Checkpoints {
  /** Dispatches due calls, respecting the global cap and the functions' concurrency limits. */
  /**
   * App origins that refused a connection (not listening yet: `next dev` still starting, a restart): nothing is
   * dispatched to them until `until` (wall clock), then one call probes. A refused connection never reached the
   * app, so it is not a failed attempt; the call keeps its attempt number and waits.
   */
  private unreachable = new Map<string, { until: number; delay: number; timer?: NodeJS.Timeout }>();

  private originOf(url: string): string {
    try {
      return new URL(url).origin;
    } catch {
      return url;
    }
  }

  private waitingForApp(url: string): boolean {
    const u = this.unreachable.get(this.originOf(url));
    return u !== undefined && Date.now() < u.until;
  }

  private appRefused(url: string): void {
    const origin = this.originOf(url);
    const prev = this.unreachable.get(origin);
    if (prev && Date.now() < prev.until) return; // several calls refused at once: one back-off step
    const delay = prev ? Math.min(prev.delay * 2, 5_000) : 250;
    if (!prev) this.log(`the app at ${origin} refuses connections (not listening yet?); calls wait for it and keep their attempts`);
    const entry: { until: number; delay: number; timer?: NodeJS.Timeout } = { until: Date.now() + delay, delay };
    entry.timer = setTimeout(() => this.pump(), delay + 5);
    entry.timer.unref();
    this.unreachable.set(origin, entry);
  }

  private appAnswered(url: string): void {
    const origin = this.originOf(url);
    const u = this.unreachable.get(origin);
    if (!u) return;
    clearTimeout(u.timer);
    this.unreachable.delete(origin);
    this.log(`the app at ${origin} answers again`);
  }

  /** Places in flight that new runs cannot take (an eighth of the cap); see pump. */
  private get reservedForStarted(): number {
    return Math.floor(this.maxInflight / 8);
  }

  /** Set while the engine's single-writer lock is being re-taken (engine-lock.ts): nothing new is dispatched. */
  private dispatchPaused = false;

  /** Stops (or resumes) dispatching calls; what is ready stays ready. */
  pauseDispatch(paused: boolean): void {
    this.dispatchPaused = paused;
    if (!paused) this.pump();
  }

  protected pump(): void {
    if (this.stopping || this.dispatchPaused) return;
    let i = 0;
    while (i < this.ready.length && this.inflight < this.maxInflight) {
      const id = this.ready[i]!;
      const w = this.work.get(id);
      const run = w?.run_id ? this.runs.get(w.run_id) : undefined;
      if (!w || !run) {
        this.ready.splice(i, 1);
        this.readyScore.delete(id);
        continue;
      }
      const fnUrl = this.functions.get(run.row.function_id)?.url;
      if (fnUrl && this.unreachable.size && this.waitingForApp(fnUrl)) {
        i++;
        continue;
      }
      if (run.row.started_at === null && this.inflight >= this.maxInflight - this.reservedForStarted) {
        // The last few places in flight are kept for runs already under way (a run woken by a slot's hand-over, an
        // approval, a finished sleep): in a burst of new runs, their calls would otherwise wait for one of the
        // burst's calls to end before anything could overtake them.
        i++;
        continue;
      }
      const slots = this.slotsFor(run);
      if (slots.some((s) => (this.slotUse.get(s.key) ?? 0) >= s.limit)) {
        i++;
        continue;
      }
      this.ready.splice(i, 1);
      this.readyScore.delete(id);
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

  protected slotsFor(run: RunMem): { key: string; limit: number }[] {
    const fn = this.functions.get(run.row.function_id);
    if (!fn) return [];
    return fn.concurrency.map((rule, i) => ({
      key: run.row.concurrency_keys[i] ?? concurrencyKey(fn, i, run.row.event),
      limit: rule.limit,
    }));
  }

  protected async executeCall(run: RunMem, w: WorkRow): Promise<void> {
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
      if (res.refused) {
        // Not an attempt: the call goes back to the ready list, held until the app listens.
        this.appRefused(fn.url);
        if (this.work.has(w.id)) this.makeReady(w);
        return;
      }
      if (this.unreachable.size) this.appAnswered(fn.url);
      await this.withLock(run, () => this.handleResult(run, fn, w, res));
    } finally {
      if (this.dispatches.get(w.id) === requestId) this.dispatches.delete(w.id);
    }
  }

  protected async callSdk(fn: FunctionDef, stepId: string, body: string, signature?: string, requestId?: string): Promise<CallResult> {
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
        refused: code === "ECONNREFUSED",
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
}
