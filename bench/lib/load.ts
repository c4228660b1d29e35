// HTTP load generators over `node:http` with a keep-alive agent (less client overhead per request than fetch).
//
// - openLoop: requests start on a fixed schedule whatever the server does (no coordinated omission); each
//   latency is measured from the request's *scheduled* start, so a client or server stall shows up in it.
// - closedLoop: N clients, each sending its next request when the previous answer has arrived: the maximum
//   throughput the server sustains at that concurrency.
//
// Runs in its own process (bench/lib/load-child.ts) so that the generator neither shares an event loop with
// the system under test nor hides its own CPU use in someone else's figure.
import http from "node:http";
import { performance } from "node:perf_hooks";
import { summarize, type LatencySummary } from "./stats";

export interface RequestSpec {
  /** Absolute URL on loopback. */
  url: string;
  method: "GET" | "POST";
  headers?: Record<string, string>;
  /** Request body; every `%i` becomes the request's sequence number (unique prompts). */
  bodyTemplate?: string;
  /** The status a successful answer has (202 for POST /api/tasks, 200 for GET /api/health). */
  expectStatus: number;
  timeoutMs?: number;
}

export interface LoadResult {
  /** Requests started. */
  sent: number;
  /** Answers with the expected status. */
  ok: number;
  /** Other answers and transport errors, by status code or error code. */
  errors: Record<string, number>;
  errorSamples: string[];
  elapsedMs: number;
  /** ok answers per second over the phase. */
  achievedRate: number;
  /** Latency of successful requests (ms). Open loop: from the scheduled start. */
  latency: LatencySummary;
  /** Open loop only: from the moment the request was actually issued. */
  serviceLatency?: LatencySummary;
  /** Open loop only: how late the generator issued requests (ms) — large values mean the client lagged. */
  sendLag?: LatencySummary;
  /** p99 and max per second of the phase (open loop), to see whether slow answers cluster. */
  perSecond?: { p99: number; max: number; count: number }[];
  /** Open loop only: wall-clock time (epoch ms) of the first second's start, to line perSecond up with other logs. */
  startedAtMs?: number;
}

interface Outcome {
  status: number | null;
  error?: string;
}

function once(agent: http.Agent, spec: RequestSpec, seq: number): Promise<Outcome> {
  return new Promise((resolve) => {
    const url = new URL(spec.url);
    const body = spec.bodyTemplate === undefined ? undefined : Buffer.from(spec.bodyTemplate.replaceAll("%i", String(seq)));
    const req = http.request(
      {
        agent,
        host: url.hostname,
        port: url.port,
        path: url.pathname + url.search,
        method: spec.method,
        headers: { ...spec.headers, ...(body ? { "content-length": String(body.length) } : {}) },
        timeout: spec.timeoutMs ?? 10_000,
      },
      (res) => {
        // Drain the body: the answer is complete only when it has all arrived.
        res.on("data", () => {});
        res.on("end", () => resolve({ status: res.statusCode ?? 0 }));
        res.on("error", (e) => resolve({ status: null, error: (e as NodeJS.ErrnoException).code ?? e.message }));
      },
    );
    req.on("timeout", () => req.destroy(new Error("client timeout")));
    req.on("error", (e) => resolve({ status: null, error: (e as NodeJS.ErrnoException).code ?? e.message }));
    req.end(body);
  });
}

class Recorder {
  ok = 0;
  sent = 0;
  errors: Record<string, number> = {};
  errorSamples: string[] = [];
  latency: number[] = [];

  record(spec: RequestSpec, o: Outcome, ms: number): boolean {
    if (o.status === spec.expectStatus) {
      this.ok++;
      this.latency.push(ms);
      return true;
    }
    const k = o.status === null ? (o.error ?? "error") : String(o.status);
    this.errors[k] = (this.errors[k] ?? 0) + 1;
    if (this.errorSamples.length < 5) this.errorSamples.push(k);
    return false;
  }
}

export async function openLoop(spec: RequestSpec, opts: { rate: number; durationMs: number; seqStart?: number }): Promise<LoadResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1024 });
  const rec = new Recorder();
  const service: number[] = [];
  const lag: number[] = [];
  const buckets: number[][] = [];
  const interval = 1000 / opts.rate;
  const total = Math.round((opts.rate * opts.durationMs) / 1000);
  const seq0 = opts.seqStart ?? 0;
  const inflight: Promise<void>[] = [];
  const t0 = performance.now() + 5;
  const startedAtMs = Date.now() + 5;

  const fire = (i: number, scheduled: number) => {
    const started = performance.now();
    lag.push(started - scheduled);
    inflight.push(
      once(agent, spec, seq0 + i).then((o) => {
        const end = performance.now();
        if (rec.record(spec, o, end - scheduled)) {
          service.push(end - started);
          const b = Math.floor((scheduled - t0) / 1000);
          (buckets[b] ??= []).push(end - scheduled);
        }
      }),
    );
  };

  await new Promise<void>((resolve) => {
    const pump = () => {
      const now = performance.now();
      while (rec.sent < total && t0 + rec.sent * interval <= now) {
        fire(rec.sent, t0 + rec.sent * interval);
        rec.sent++;
      }
      if (rec.sent >= total) return resolve();
      setTimeout(pump, Math.max(0, t0 + rec.sent * interval - performance.now()));
    };
    setTimeout(pump, 5);
  });
  await Promise.all(inflight);
  const elapsedMs = performance.now() - t0;
  agent.destroy();
  return {
    sent: rec.sent,
    ok: rec.ok,
    errors: rec.errors,
    errorSamples: rec.errorSamples,
    elapsedMs,
    // The offered window is what the rate is judged on; the tail of the last answers is not part of it.
    achievedRate: rec.ok / (Math.max(opts.durationMs, (total - 1) * interval) / 1000),
    latency: summarize(rec.latency),
    serviceLatency: summarize(service),
    sendLag: summarize(lag),
    perSecond: Array.from(buckets, (b) => {
      const s = summarize(b ?? []);
      return { p99: s.p99, max: s.max, count: s.count };
    }),
    startedAtMs,
  };
}

export async function closedLoop(spec: RequestSpec, opts: { concurrency: number; durationMs: number; seqStart?: number }): Promise<LoadResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: opts.concurrency });
  const rec = new Recorder();
  let seq = opts.seqStart ?? 0;
  const t0 = performance.now();
  const end = t0 + opts.durationMs;
  const client = async () => {
    while (performance.now() < end) {
      const started = performance.now();
      rec.sent++;
      const o = await once(agent, spec, seq++);
      rec.record(spec, o, performance.now() - started);
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, client));
  const elapsedMs = performance.now() - t0;
  agent.destroy();
  return {
    sent: rec.sent,
    ok: rec.ok,
    errors: rec.errors,
    errorSamples: rec.errorSamples,
    elapsedMs,
    achievedRate: rec.ok / (elapsedMs / 1000),
    latency: summarize(rec.latency),
  };
}
