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
import { checkpointChainFloor, dsyncWriteFloor, fdatasyncFloor, floorStats, httpFloor, pgFloors, type FloorStats } from "./lib/floors";
import { createHash } from "node:crypto";

const STEPS = 50;
const OUTPUT_BYTES = 2048;
const CONCURRENT = 10;

function peakRssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return kb / 1024;
}


// BENCH_TRACE=1: a hop trace of every checkpoint of the single-run phase, both processes (local/engine/trace.ts on
// the engine's side; the step body and the SDK's fetch here), on CLOCK_MONOTONIC so the two line up exactly.
const TRACE = process.env["BENCH_TRACE"] === "1";
const FLOOR_N = Number(process.env["BENCH_FLOOR_N"] ?? 400);
/** Idle before each sample of the "after idle" floors: about what each process sleeps between two steps of a run. */
const FLOOR_IDLE_MS = 3;
/** The engine's journal directory (INNGEST_ENGINE_JOURNAL_DIR; "off" for Postgres as the durable point); default: in
 * the bench's data directory, on the same disk as Postgres. */
const JOURNAL = process.env["INNGEST_ENGINE_JOURNAL_DIR"] || "";
const nowUs = () => Number(process.hrtime.bigint() / 1000n);
/** The SDK's hashed step id (sha1 of the id), so the bench's marks meet the engine's, keyed by the step. */
const STEP_HASHES = Array.from({ length: STEPS }, (_, i) => createHash("sha1").update(`step-${i}`).digest("hex"));

async function startEngineProcess(databaseUrl: string, port: number, mode: EngineMode, journalDir: string, traceFile?: string): Promise<ChildProcess> {
  // BENCH_ENGINE_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" profiles the engine process.
  const nodeArgs = process.env["BENCH_ENGINE_NODE_ARGS"]?.split(" ").filter(Boolean) ?? [];
  const args = [...nodeArgs, "--import", "tsx", "local/engine/main.ts", "--database-url", databaseUrl, "--port", String(port), "--mode", mode, "--journal-dir", journalDir];
  // stdout ignored: the engine logs one line per step, and a pipe the (busy) bench reads late blocks the engine's
  // synchronous writes, which then dominate its CPU profile. Readiness comes from /health instead.
  const env = traceFile ? { ...process.env, INNGEST_ENGINE_TRACE: traceFile } : process.env;
  const proc = spawn(process.execPath, args, { stdio: ["ignore", "ignore", "inherit"], env });
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
  /** The engine's CPU per step over the five single runs (the bench's status polls included, every 25 ms). */
  singleEngineCpu: number;
  singlePgCpu: number;
  /** The SDK's checkpoint round trips (fetch to the engine and back), per step, one run. */
  checkpointPerStep: number;
  concWall: number;
  stepsPerSec: number;
  cpu: { engine: number; app: number; pg: number };
  rss: number;
  /** Measured in the same run, checkpoint mode only (bench/lib/floors.ts). */
  floors?: {
    http: FloorStats;
    httpAfterIdle: FloorStats;
    select1: FloorStats;
    apply: FloorStats;
    applyAfterIdle: FloorStats;
    applyNoFlush: FloorStats;
    fdatasync: FloorStats;
    /** A journal record's size written to a preallocated O_DSYNC file: what the journal's durable write costs. */
    journalWrite: FloorStats;
    /** A bare server doing the same apply per POST: every hop of a checkpoint, none of the engine's code. */
    chain: FloorStats;
    chainAfterIdle: FloorStats;
    roundTrip: FloorStats;
  };
  trace?: Segment[];
}

interface Segment {
  label: string;
  whose: string;
  p50: number;
  mean: number;
  n: number;
}

/** Hops of one checkpointed step, in order; each segment runs from one hop to the next. */
const HOPS: [string, string, string][] = [
  ["body", "step body → SDK's checkpoint fetch starts (serialise, hash, build the request)", "SDK"],
  ["fetch", "fetch starts → engine's request event (our fetch, kernel, engine wakes)", "ours + kernel"],
  ["in", "engine: body read, JSON.parse", "ours"],
  ["read", "engine: zod", "ours"],
  ["parsed", "engine: parsed → run lock taken", "ours"],
  ["locked", "engine: lock → commit sent (checks, memo)", "ours"],
  ["commit", "engine: commit → durable write starts (group-commit queue, JSON)", "ours"],
  // The durable point: the journal's write (O_DSYNC), or with INNGEST_ENGINE_JOURNAL_DIR=off the Postgres round trip.
  ["sent", JOURNAL === "off" ? "engine: Postgres round trip (pg driver, apply, WAL flush)" : "engine: journal write, O_DSYNC (the durable point)", JOURNAL === "off" ? "Postgres + disk + kernel" : "disk + kernel"],
  ["pgdone", "engine: durable → commit resolved", "ours"],
  ["committed", "engine: committed → answer starts (promise hops to the answer)", "ours"],
  ["answering", "engine: the answer's write (res.end; loopback TCP, wakes the SDK)", "ours + kernel"],
  ["answered", "answer written → SDK's fetch resolved (kernel, SDK wakes, our fetch)", "ours + kernel"],
  ["fetched", "fetch resolved → next step body (SDK; a setTimeout every 10th step)", "SDK"],
];

/** Joins the bench's marks with the engine's trace file: per-segment p50/mean over the single-run phase's steps. */
function traceSegments(bench: Map<string, Record<string, number>>, engineFile: string): Segment[] {
  const byKey = new Map<string, Record<string, number>>();
  const allKeys = new Map<string, Record<string, number>>();
  for (const line of readFileSync(engineFile, "utf8").split("\n")) {
    if (!line) continue;
    const [key, hop, at] = JSON.parse(line) as [string, string, number];
    if (key.startsWith("applier:")) (allKeys.get(key) ?? allKeys.set(key, {}).get(key)!)[hop] = at;
    if (!bench.has(key)) continue;
    (byKey.get(key) ?? byKey.set(key, {}).get(key)!)[hop] = at;
  }
  const samples = HOPS.map(() => [] as number[]);
  for (const [key, b] of bench) {
    const e = byKey.get(key);
    const [runId, hash] = key.split(":");
    const i = STEP_HASHES.indexOf(hash!);
    const next = i >= 0 && i + 1 < STEPS ? bench.get(`${runId}:${STEP_HASHES[i + 1]}`)?.["body"] : undefined;
    if (!e || next === undefined) continue;
    const t = { ...b, ...e, next };
    const order = [...HOPS.map((h) => h[0]), "next"];
    if (order.some((h) => t[h as keyof typeof t] === undefined)) continue;
    HOPS.forEach((_, j) => samples[j]!.push((t[order[j + 1] as keyof typeof t]! - t[order[j] as keyof typeof t]!) / 1000));
  }
  // The journal's applier (its statements to Postgres): how often one was being sent, or was in flight, while a
  // checkpoint was on its way in or being handled (fetch start → answer written).
  const applier: Record<string, number>[] = [];
  for (const [key, hops] of allKeys) if (key.startsWith("applier:")) applier.push(hops);
  let overlapWrite = 0;
  let overlapFlight = 0;
  let n = 0;
  for (const [key, b] of bench) {
    const e = byKey.get(key);
    if (!e || b["fetch"] === undefined || e["answered"] === undefined) continue;
    n++;
    const [s0, s1] = [b["fetch"]!, e["answered"]!];
    if (applier.some((a) => a["sent"]! < s1 && (a["written"] ?? a["sent"]!) > s0)) overlapWrite++;
    if (applier.some((a) => a["sent"]! < s1 && (a["done"] ?? Infinity) > s0)) overlapFlight++;
  }
  const stmt = floorStats(applier.filter((a) => a["written"] !== undefined).map((a) => (a["written"]! - a["sent"]!) / 1000));
  const rt = floorStats(applier.filter((a) => a["done"] !== undefined).map((a) => (a["done"]! - a["sent"]!) / 1000));
  applierStats = { statements: applier.length, checkpoints: n, overlapWrite, overlapFlight, stmt, rt };
  return HOPS.map(([, label, whose], j) => ({ label, whose, ...floorStats(samples[j]!), n: samples[j]!.length }));
}
let applierStats: { statements: number; checkpoints: number; overlapWrite: number; overlapFlight: number; stmt: FloorStats; rt: FloorStats } | undefined;

/** The same workload against a fresh engine process (and database) in one execution mode. */
async function benchMode(pgUrl: (db?: string) => string, mode: EngineMode, dataDir: string): Promise<Figures> {
  const dbName = `bench_engine_${mode}`;
  await runSql(pgUrl(), `CREATE DATABASE ${dbName}`);
  const enginePort = await freePort();
  const traceFile = TRACE && mode === "checkpoint" ? join(tmpdir(), `nightshift-engine-trace-${process.pid}.jsonl`) : undefined;
  // BENCH_PG_UNIX=1: the engine (and the apply floor) reach Postgres over its Unix socket in /tmp instead of TCP.
  const dbUrl = process.env["BENCH_PG_UNIX"] === "1" ? pgUrl(dbName).replace(/@127\.0\.0\.1:(\d+)\/(\w+)$/, "@/$2?host=/tmp&port=$1") : pgUrl(dbName);
  const engine = await startEngineProcess(dbUrl, enginePort, mode, JOURNAL || join(dataDir, `engine-journal-${mode}`), traceFile);
  /** The bench's (SDK side) marks while tracing the single runs: key `${runId}:${step hash}` → hop → µs. */
  const marks = new Map<string, Record<string, number>>();
  let tracingNow = false;
  const mark = (key: string, hop: string, at: number) => (marks.get(key) ?? marks.set(key, {}).get(key)!)[hop] = at;
  let floors: Figures["floors"];
  let trace: Segment[] | undefined;
  const cpSamples: number[] = [];
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
      const u0 = tracingNow ? nowUs() : 0;
      try {
        return await baseFetch(input, init);
      } finally {
        if (String(input instanceof Request ? input.url : input).includes("/v1/checkpoint/")) {
          const ms = performance.now() - t0;
          cpMs += ms;
          cpCount++;
          cpSamples.push(ms);
          if (tracingNow) {
            const u1 = nowUs();
            const b = JSON.parse(String(init?.body)) as { run_id: string; steps: { id: string }[] };
            const key = `${b.run_id}:${b.steps[0]?.id}`;
            mark(key, "fetch", u0);
            mark(key, "fetched", u1);
          }
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
    const fn = inngest.createFunction({ id: "fifty", triggers: [{ event: "bench/go" }] }, async ({ step, runId }) => {
      let n = 0;
      for (let i = 0; i < STEPS; i++) {
        const r = await step.run(`step-${i}`, () => {
          if (tracingNow) mark(`${runId}:${STEP_HASHES[i]}`, "body", nowUs());
          return { i, payload };
        });
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
    tracingNow = traceFile !== undefined;
    cpSamples.length = 0;
    const singleCpu0 = cpuMs({ pid: engine.pid! });
    const singlePg0 = cpuMs({ comm: "postgres", under: process.pid });
    for (let i = 0; i < 5; i++) singles.push(await measure(1));
    // The engine's CPU per step of one run alone: its critical-path work plus the applier's, nothing interleaved.
    const singleEngineCpu = (cpuMs({ pid: engine.pid! }) - singleCpu0) / (5 * STEPS);
    const singlePgCpu = (cpuMs({ comm: "postgres", under: process.pid }) - singlePg0) / (5 * STEPS);
    tracingNow = false;
    const roundTrip = floorStats(cpSamples);
    singles.sort((a, b) => a.wall - b.wall);
    const single = singles[2]!; // median of 5

    if (mode === "checkpoint" && FLOOR_N > 0) {
      // The floors, right after the single runs, on the same machine state: what the round trip above is made of.
      const body = JSON.stringify({ run_id: "r", fn_id: "bench-fifty", qi_id: "q", request_id: "x", steps: [{ id: STEP_HASHES[0], op: "StepRun", name: "step-0", displayName: "step-0", data: { i: 0, payload } }], ts: Date.now() });
      const http = floorStats(await httpFloor(baseFetch, body, FLOOR_N));
      const httpAfterIdle = floorStats(await httpFloor(baseFetch, body, FLOOR_N, FLOOR_IDLE_MS));
      const p = await pgFloors(dbUrl, { i: 0, payload }, FLOOR_N, FLOOR_IDLE_MS);
      const fdatasync = floorStats(fdatasyncFloor(dataDir, FLOOR_N));
      const journalWrite = floorStats(dsyncWriteFloor(dataDir, FLOOR_N, body.length + 200));
      const chain = await checkpointChainFloor(baseFetch, body, dbUrl, FLOOR_N, FLOOR_IDLE_MS);
      floors = {
        http,
        httpAfterIdle,
        select1: floorStats(p.select1),
        apply: floorStats(p.apply),
        applyAfterIdle: floorStats(p.applyAfterIdle),
        applyNoFlush: floorStats(p.applyNoFlush),
        fdatasync,
        journalWrite,
        chain: floorStats(chain.back),
        chainAfterIdle: floorStats(chain.idle),
        roundTrip,
      };
    }

    const concurrent = [];
    const cpu0 = { engine: cpuMs({ pid: engine.pid! }), app: process.cpuUsage(), pg: cpuMs({ comm: "postgres", under: process.pid }) };
    for (let i = 0; i < 3; i++) concurrent.push(await measure(CONCURRENT));
    const appCpu = process.cpuUsage(cpu0.app);
    const totalSteps = 3 * CONCURRENT * STEPS;
    const cpu = {
      engine: (cpuMs({ pid: engine.pid! }) - cpu0.engine) / totalSteps,
      app: (appCpu.user + appCpu.system) / 1000 / totalSteps,
      pg: (cpuMs({ comm: "postgres", under: process.pid }) - cpu0.pg) / totalSteps,
    };
    concurrent.sort((a, b) => a.wall - b.wall);
    const conc = concurrent[1]!; // median of 3
    return {
      mode,
      singleWall: single.wall,
      singleCalls: single.calls,
      perStep: single.wall / STEPS,
      enginePerStep: Math.max(0, single.wall - single.sdk) / STEPS,
      singleEngineCpu,
      singlePgCpu,
      checkpointPerStep: single.cpMs / STEPS,
      concWall: conc.wall,
      stepsPerSec: (CONCURRENT * STEPS) / (conc.wall / 1000),
      cpu,
      rss: peakRssMb(engine.pid!),
      floors,
      get trace() {
        return trace;
      },
    };
  } finally {
    server.closeAllConnections();
    server.close();
    const exited = new Promise((r) => engine.once("exit", r));
    engine.kill("SIGTERM");
    await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
    if (traceFile) {
      // The engine writes its marks when it stops (SIGTERM above).
      try {
        trace = traceSegments(marks, traceFile);
      } catch (err) {
        console.error(`trace: ${String(err)}`);
      }
      await rm(traceFile, { force: true });
    }
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
    for (const mode of modes) results.push(await benchMode((db) => pg.url(db), mode, dataDir));
    const classic = results[0]!;
    const cp = results.at(-1)!;

    const cpu = cpus()[0]?.model ?? "unknown cpu";
    const row = (label: string, f: (x: Figures) => string, goal = "") =>
      console.log(`${label.padEnd(40)}${f(classic).padStart(14)}${f(cp).padStart(16)}   ${goal}`);
    console.log(`\nLocal Inngest engine benchmark — ${new Date().toISOString()}`);
    console.log(`machine: ${cpus().length} cores (${cpu}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM, node ${process.version}`);
    console.log(`workload: ${STEPS}-step function, ${OUTPUT_BYTES} B per step output, real SDK serve() over HTTP, Postgres ${pg.port}`);
    console.log(`engine's durable point: ${JOURNAL === "off" ? "Postgres (INNGEST_ENGINE_JOURNAL_DIR=off)" : `its journal (${JOURNAL || "in the bench's data directory"})`}`);
    console.log("");
    console.log(`${"".padEnd(40)}${"classic".padStart(14)}${"checkpoint".padStart(16)}`);
    row("single run, wall (median of 5)", (x) => `${x.singleWall.toFixed(0)} ms`);
    row("  SDK calls for the run", (x) => `${x.singleCalls}`);
    row("  wall time per step", (x) => `${x.perStep.toFixed(2)} ms`, "goal (checkpoint) ≤ 2.5 ms");
    row("  outside the SDK handler, per step", (x) => `${x.enginePerStep.toFixed(2)} ms`);
    row("  checkpoint round trip, per step", (x) => `${x.checkpointPerStep.toFixed(2)} ms`);
    row("  CPU per step, one run: engine", (x) => `${x.singleEngineCpu.toFixed(2)} ms`);
    row("  CPU per step, one run: Postgres", (x) => `${x.singlePgCpu.toFixed(2)} ms`);
    row(`${CONCURRENT} concurrent runs, wall (median of 3)`, (x) => `${x.concWall.toFixed(0)} ms`);
    row("  throughput", (x) => `${x.stepsPerSec.toFixed(0)} steps/s`, "goal (checkpoint) ≥ 1,000 and ≥ 4× classic");
    row("  CPU per step: engine", (x) => `${x.cpu.engine.toFixed(2)} ms`);
    row("  CPU per step: app/SDK + bench poller", (x) => `${x.cpu.app.toFixed(2)} ms`);
    row("  CPU per step: Postgres", (x) => `${x.cpu.pg.toFixed(2)} ms`);
    row("engine peak RSS (VmHWM)", (x) => `${x.rss.toFixed(0)} MB`, "goal < 300 MB");
    console.log("");
    console.log(`checkpoint vs classic: ${(classic.perStep / cp.perStep).toFixed(1)}× faster per step, ${(cp.stepsPerSec / classic.stepsPerSec).toFixed(1)}× the throughput`);
    const ms = (x: FloorStats) => `p50 ${x.p50.toFixed(2)}  mean ${x.mean.toFixed(2)} ms`;
    if (cp.floors) {
      const f = cp.floors;
      console.log("");
      console.log(`floors, measured in this run right after the single runs (${FLOOR_N} samples each):`);
      console.log(`  checkpoint round trip (the SDK's fetch), single runs    ${ms(f.roundTrip)}`);
      console.log(`  HTTP POST round trip, loopback, the app's fetch         ${ms(f.http)}`);
      console.log(`    the same, each after ${FLOOR_IDLE_MS} ms idle (both processes asleep) ${ms(f.httpAfterIdle)}`);
      console.log(`  Postgres SELECT 1 round trip (the engine's URL)         ${ms(f.select1)}`);
      console.log(`  apply of one checkpointed step, durable commit          ${ms(f.apply)}`);
      console.log(`    the same, each after ${FLOOR_IDLE_MS} ms idle                  ${ms(f.applyAfterIdle)}`);
      console.log(`  the same, synchronous_commit=off (prices the flush only) ${ms(f.applyNoFlush)}`);
      console.log(`  the disk alone: 8 KB rewrite + fdatasync (not ours)     ${ms(f.fdatasync)}`);
      console.log(`  a journal record's write alone (O_DSYNC, preallocated)  ${ms(f.journalWrite)}`);
      const sum = f.http.p50 + f.apply.p50;
      const idleSum = f.httpAfterIdle.p50 + f.applyAfterIdle.p50;
      console.log(`  floors' sum (HTTP + durable apply, p50)                 ${sum.toFixed(2)} ms; round trip − floors = ${(f.roundTrip.p50 - sum).toFixed(2)} ms (p50)`);
      console.log(`  the same after idle                                     ${idleSum.toFixed(2)} ms; round trip − floors = ${(f.roundTrip.p50 - idleSum).toFixed(2)} ms (p50)`);
      console.log(`  every hop, none of the engine's code (a bare server that runs the same apply per POST):`);
      console.log(`    back to back                                          ${ms(f.chain)}`);
      console.log(`    each after ${FLOOR_IDLE_MS} ms idle                                  ${ms(f.chainAfterIdle)}; round trip − this = ${(f.roundTrip.p50 - f.chainAfterIdle.p50).toFixed(2)} ms (p50)`);
    }
    if (cp.trace) {
      console.log("");
      console.log("where a checkpointed step goes (BENCH_TRACE=1, single runs, both processes on CLOCK_MONOTONIC):");
      for (const s of cp.trace) console.log(`  ${s.label.padEnd(82)} p50 ${s.p50.toFixed(3).padStart(6)}  mean ${s.mean.toFixed(3).padStart(6)} ms   ${s.whose}`);
      if (applierStats) {
        const a = applierStats;
        console.log(`  the journal's applier, whole phase: ${a.statements} statements; its query() call (socket write) p50 ${a.stmt.p50.toFixed(3)} mean ${a.stmt.mean.toFixed(3)} ms, round trip p50 ${a.rt.p50.toFixed(3)} ms`);
        console.log(`    checkpoints (fetch start → answer written) overlapping an applier's query() call: ${a.overlapWrite} of ${a.checkpoints}; overlapping a statement in flight: ${a.overlapFlight} of ${a.checkpoints}`);
      }
      console.log(`  ${"sum".padEnd(82)} p50 ${cp.trace.reduce((a, s) => a + s.p50, 0).toFixed(3).padStart(6)}  mean ${cp.trace.reduce((a, s) => a + s.mean, 0).toFixed(3).padStart(6)} ms`);
    }
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
