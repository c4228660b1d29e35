// npm run bench:engine — the local Inngest engine under load, through the real SDK serve() handler over HTTP.
// A 50-step function with 2 KB step outputs: per-step orchestration overhead (one run), steps/s with 10 runs
// at once, and the engine's peak RSS. The engine runs in its own process so its memory is measured alone. Both
// execution modes side by side: classic (one step per request) and checkpointing (many steps per request).
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { cpus, loadavg, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { serve } from "inngest/node";
import { Inngest } from "inngest";
import { createInngestClient, inngestClientOptions } from "../inngest/client";
import { runSql, startPostgres } from "../local/db/embedded-postgres";
import { freePort } from "../local/ports";
import type { EngineMode } from "../local/engine";
import { cpuMs } from "./lib/procs";

const STEPS = 50;
const OUTPUT_BYTES = 2048;
const CONCURRENT = 10;

function peakRssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return kb / 1024;
}


async function startEngineProcess(databaseUrl: string, port: number, mode: EngineMode): Promise<ChildProcess> {
  // BENCH_ENGINE_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" profiles the engine process.
  const nodeArgs = process.env["BENCH_ENGINE_NODE_ARGS"]?.split(" ").filter(Boolean) ?? [];
  const args = [...nodeArgs, "--import", "tsx", "local/engine/main.ts", "--database-url", databaseUrl, "--port", String(port), "--mode", mode];
  // stdout ignored: the engine logs one line per step, and a pipe the (busy) bench reads late blocks the engine's
  // synchronous writes, which then dominate its CPU profile. Readiness comes from /health instead.
  const proc = spawn(process.execPath, args, { stdio: ["ignore", "ignore", "inherit"] });
  let exited = false;
  proc.once("exit", () => (exited = true));
  for (const deadline = Date.now() + 60_000; ; ) {
    if (exited) throw new Error("engine exited before it was ready");
    const ok = await fetch(`http://127.0.0.1:${port}/health`).then((r) => r.ok, () => false);
    if (ok) break;
    if (Date.now() > deadline) throw new Error("engine not ready within 60 s");
    await new Promise((r) => setTimeout(r, 100));
  }
  return proc;
}

interface Figures {
  mode: EngineMode;
  singleWall: number;
  singleCalls: number;
  perStep: number;
  enginePerStep: number;
  /** The SDK's checkpoint round trips (fetch to the engine and back), per step, one run. */
  checkpointPerStep: number;
  concWall: number;
  stepsPerSec: number;
  cpu: { engine: number; app: number; pg: number };
  rss: number;
}

/** The same workload against a fresh engine process (and database) in one execution mode. */
async function benchMode(pgUrl: (db?: string) => string, mode: EngineMode): Promise<Figures> {
  const dbName = `bench_engine_${mode}`;
  await runSql(pgUrl(), `CREATE DATABASE ${dbName}`);
  const enginePort = await freePort();
  const engine = await startEngineProcess(pgUrl(dbName), enginePort, mode);
  const engineUrl = `http://127.0.0.1:${enginePort}`;
  const server = createServer();
  try {
    // The SDK's own requests to the engine (checkpoints), timed: the round trip it waits for after each step.
    // Through the app's client options (its fetch, its checkpointing), so the bench measures what the app runs;
    // BENCH_GLOBAL_FETCH=1 swaps in the global fetch for a before/after comparison.
    const baseFetch: typeof fetch = process.env["BENCH_GLOBAL_FETCH"] === "1" ? fetch : inngestClientOptions.fetch;
    let cpMs = 0;
    let cpCount = 0;
    const timedFetch: typeof fetch = async (input, init) => {
      const t0 = performance.now();
      try {
        return await baseFetch(input, init);
      } finally {
        if (String(input instanceof Request ? input.url : input).includes("/v1/checkpoint/")) {
          cpMs += performance.now() - t0;
          cpCount++;
        }
      }
    };
    // BENCH_SDK_HEADERS=1: the SDK's own client (headers rebuilt from the environment on every request), for a
    // before/after comparison of inngest/client-headers.ts.
    const build = process.env["BENCH_SDK_HEADERS"] === "1" ? (o: ConstructorParameters<typeof Inngest>[0]) => new Inngest(o) : createInngestClient;
    const inngest = build({
      ...inngestClientOptions,
      id: "bench",
      isDev: true,
      baseUrl: engineUrl,
      fetch: timedFetch,
      logger: { info() {}, warn() {}, error() {}, debug() {} },
    });
    const payload = "x".repeat(OUTPUT_BYTES);
    const fn = inngest.createFunction({ id: "fifty", triggers: [{ event: "bench/go" }] }, async ({ step }) => {
      let n = 0;
      for (let i = 0; i < STEPS; i++) {
        const r = await step.run(`step-${i}`, () => ({ i, payload }));
        n += r.i;
      }
      return n;
    });
    // Time spent inside the SDK handler, so the engine's own share can be told apart. With checkpointing the
    // handler's time includes waiting for the engine's checkpoint answers, so "engine + HTTP" is a lower bound.
    let sdkMs = 0;
    let calls = 0;
    const handler = serve({ client: inngest, functions: [fn] });
    server.on("request", (req, res) => {
      const t0 = performance.now();
      res.once("finish", () => {
        sdkMs += performance.now() - t0;
        calls++;
      });
      return handler(req, res);
    });
    server.keepAliveTimeout = 60_000;
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    const serveUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/inngest`;
    const sync = await fetch(serveUrl, { method: "PUT" });
    if (!sync.ok) throw new Error(`sync failed: ${await sync.text()}`);

    const send = async (n: number): Promise<string[]> => {
      const res = await fetch(`${engineUrl}/e/bench`, {
        method: "POST",
        body: JSON.stringify(Array.from({ length: n }, (_, i) => ({ name: "bench/go", data: { i } }))),
      });
      return ((await res.json()) as { ids: string[] }).ids;
    };
    // Polled every 25 ms, but timed by the runs' own ended_at (the engine's wall clock): a tight poll loop would
    // load the engine and Postgres it measures (it did: a 2 ms loop), and a slow one would add its granularity.
    const waitAll = async (eventIds: string[]): Promise<number> => {
      for (;;) {
        const res = await fetch(`${engineUrl}/v0/runs?function_id=bench-fifty&status=completed&limit=1000`);
        const runs = ((await res.json()) as { data: { event_id: string; ended_at: string | null }[] }).data;
        const ended = new Map(runs.map((r) => [r.event_id, Date.parse(r.ended_at ?? "")]));
        if (eventIds.every((id) => ended.has(id))) return Math.max(...eventIds.map((id) => ended.get(id)!));
        await new Promise((r) => setTimeout(r, 25));
      }
    };
    const measure = async (n: number) => {
      sdkMs = 0;
      calls = 0;
      cpMs = 0;
      cpCount = 0;
      const t0 = Date.now();
      const endedAt = await waitAll(await send(n));
      return { wall: endedAt - t0, sdk: sdkMs, calls, cpMs, cpCount };
    };

    await measure(2); // warm up JIT, connections and Postgres caches

    const singles = [];
    for (let i = 0; i < 5; i++) singles.push(await measure(1));
    singles.sort((a, b) => a.wall - b.wall);
    const single = singles[2]!; // median of 5

    const concurrent = [];
    const cpu0 = { engine: cpuMs({ pid: engine.pid! }), app: process.cpuUsage(), pg: cpuMs({ comm: "postgres" }) };
    for (let i = 0; i < 3; i++) concurrent.push(await measure(CONCURRENT));
    const appCpu = process.cpuUsage(cpu0.app);
    const totalSteps = 3 * CONCURRENT * STEPS;
    const cpu = {
      engine: (cpuMs({ pid: engine.pid! }) - cpu0.engine) / totalSteps,
      app: (appCpu.user + appCpu.system) / 1000 / totalSteps,
      pg: (cpuMs({ comm: "postgres" }) - cpu0.pg) / totalSteps,
    };
    concurrent.sort((a, b) => a.wall - b.wall);
    const conc = concurrent[1]!; // median of 3
    return {
      mode,
      singleWall: single.wall,
      singleCalls: single.calls,
      perStep: single.wall / STEPS,
      enginePerStep: Math.max(0, single.wall - single.sdk) / STEPS,
      checkpointPerStep: single.cpMs / STEPS,
      concWall: conc.wall,
      stepsPerSec: (CONCURRENT * STEPS) / (conc.wall / 1000),
      cpu,
      rss: peakRssMb(engine.pid!),
    };
  } finally {
    server.closeAllConnections();
    server.close();
    const exited = new Promise((r) => engine.once("exit", r));
    engine.kill("SIGTERM");
    await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
  }
}

async function main(): Promise<void> {
  const dataDir = await mkdtemp(join(tmpdir(), "nightshift-bench-engine-"));
  const pg = await startPostgres({ dataDir, port: await freePort(), persistent: false });
  try {
    // BENCH_MODES=checkpoint runs one mode only (e.g. while profiling); the report compares both.
    const modes = (process.env["BENCH_MODES"]?.split(",") ?? ["classic", "checkpoint"]) as EngineMode[];
    const results: Figures[] = [];
    // Figures from a shared machine mean little without its load: printed with them.
    const loadAtStart = loadavg();
    for (const mode of modes) results.push(await benchMode((db) => pg.url(db), mode));
    const classic = results[0]!;
    const cp = results.at(-1)!;

    const cpu = cpus()[0]?.model ?? "unknown cpu";
    const row = (label: string, f: (x: Figures) => string, goal = "") =>
      console.log(`${label.padEnd(40)}${f(classic).padStart(14)}${f(cp).padStart(16)}   ${goal}`);
    console.log(`\nLocal Inngest engine benchmark — ${new Date().toISOString()}`);
    console.log(`machine: ${cpus().length} cores (${cpu}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM, node ${process.version}`);
    console.log(`workload: ${STEPS}-step function, ${OUTPUT_BYTES} B per step output, real SDK serve() over HTTP, Postgres ${pg.port}`);
    console.log("");
    console.log(`${"".padEnd(40)}${"classic".padStart(14)}${"checkpoint".padStart(16)}`);
    row("single run, wall (median of 5)", (x) => `${x.singleWall.toFixed(0)} ms`);
    row("  SDK calls for the run", (x) => `${x.singleCalls}`);
    row("  wall time per step", (x) => `${x.perStep.toFixed(2)} ms`, "goal (checkpoint) ≤ 2.5 ms");
    row("  outside the SDK handler, per step", (x) => `${x.enginePerStep.toFixed(2)} ms`);
    row("  checkpoint round trip, per step", (x) => `${x.checkpointPerStep.toFixed(2)} ms`);
    row(`${CONCURRENT} concurrent runs, wall (median of 3)`, (x) => `${x.concWall.toFixed(0)} ms`);
    row("  throughput", (x) => `${x.stepsPerSec.toFixed(0)} steps/s`, "goal (checkpoint) ≥ 1,000 and ≥ 4× classic");
    row("  CPU per step: engine", (x) => `${x.cpu.engine.toFixed(2)} ms`);
    row("  CPU per step: app/SDK + bench poller", (x) => `${x.cpu.app.toFixed(2)} ms`);
    row("  CPU per step: Postgres", (x) => `${x.cpu.pg.toFixed(2)} ms`);
    row("engine peak RSS (VmHWM)", (x) => `${x.rss.toFixed(0)} MB`, "goal < 300 MB");
    console.log("");
    console.log(`checkpoint vs classic: ${(classic.perStep / cp.perStep).toFixed(1)}× faster per step, ${(cp.stepsPerSec / classic.stepsPerSec).toFixed(1)}× the throughput`);
    const la = (l: number[]) => l.map((x) => x.toFixed(2)).join(" ");
    console.log(`load average (1/5/15 min): ${la(loadAtStart)} at the start, ${la(loadavg())} at the end`);
  } finally {
    await pg.stop().catch(() => {});
    await rm(dataDir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
