// npm run bench:submit — POST /api/tasks against `next start` while the local engine ingests and runs the submitted
// tasks, beside GET /api/health (a trivial route in the same server) as the baseline.
//
//   1. one production build into .next-bench (`--no-build` reuses the one that is there);
//   2. a temporary data stack (embedded Postgres + PostgREST; its /rest/v1 proxy in this process); a child process
//      with the local engine and the offline Claude double (bench/lib/runs-child.ts); two `next start` children,
//      each in its own process group, from the same build: the API server (POST /api/tasks, GET /api/health; its
//      outbox relay sends the start events) and the runs server the engine calls at /api/inngest — as on Vercel,
//      where `/api/inngest` calls are other invocations than the API's (`BENCH_ONE_SERVER=1`: both on one server);
//      a load generator process;
//   3. phases: closed loop GET /api/health → A. open loop POST /api/tasks at 100 requests/s with the runs "elsewhere"
//      (the runs server, the engine and the double held with SIGSTOP until it ends — or, BENCH_RUNS_MODE=nice, at
//      nice 19 — as on Vercel, where Inngest, the invocations that run tasks and Anthropic are other machines; the
//      API server's event batches are accepted meanwhile by a gate standing in for Inngest Cloud's event API,
//      bench/lib/event-gate.ts, and delivered to the engine after) → the backlog drains at normal priority,
//      no requests (CPU per task run) → B. the same open loop with everything on this box at one priority →
//      C. closed loops GET /api/health then POST /api/tasks with the runs held again as in A (B's unfinished backlog
//      held with them), plus the diagnostics that need no engine (what a POST calls, each alone; POST against a third
//      `next start` whose event API is a stub) → the engine's event API alone → D. closed loop POST /api/tasks with
//      everything on this box (the backlog running meanwhile, one priority);
//   4. latency, throughput, errors, tasks completed, and the CPU each component used in each phase.
//
// Goals (issue 10), both "with runs served by a separate app process (as on Vercel)": p99 < 50 ms at 100 requests/s
// (judged on A); POST closed-loop throughput ≥ 30% of GET /api/health's in the same server (judged on C, where both
// are measured under the same conditions; D, with the runs on this box, is printed beside it). BENCH_RATE (100), BENCH_RUNS_MODE (hold | nice), BENCH_RUNS_NICE (19), BENCH_BACKLOG_MAX_S (300: the
// longest wait for the backlog).
// `--profile` also writes V8 CPU profiles of both next-server processes and prints where their time went.
// Everything listens on 127.0.0.1 and is stopped at the end; exits non-zero only when the setup fails.
import { spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { cpus, loadavg, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { createApiKey } from "../lib/api-keys";
import { startDataStack, type DataStack } from "../local/data-stack";
import { summarizeProfiles, type ProfileSummary } from "./lib/cpuprofile";
import type { LoadJob, LoadJobSpec, LoadReply } from "./lib/load-child";
import type { LoadResult, RequestSpec } from "./lib/load";
import { COMPONENT_NAMES, cpuBetween, renice, snapshot, type Components, type CpuUse } from "./lib/procs";
import type { RunsChildReady } from "./lib/runs-child";
import { startEventGate, type EventGate } from "./lib/event-gate";
import { fmtMs } from "./lib/stats";
import { dbActivity, PROBE_NODE_ARGS, printProbe, probeEvents, type ProbeReport } from "./lib/stall-probe";
import { adminClient, build, DIST_DIR, killGroupOnExit, log, root, startNext, type NextServer } from "./lib/next-app";


const RATE = Number(process.env["BENCH_RATE"] ?? 100); // requests/s, open loop
/** BENCH_PROBE=1: trace the API server's GC and event-loop stalls, and Postgres's checkpoints/autovacuum, during A. */
const PROBE = process.env["BENCH_PROBE"] === "1";
const OPEN_MS = 15_000;
const CONCURRENCY = 16; // closed-loop clients
const CLOSED_MS = 10_000;
const PIECE_MS = 2_000; // each "what a POST calls" ceiling
const STUB_MS = 4_000; // each phase against the stub-event server
const DRAIN_MAX_MS = 10_000;
const FINAL_DRAIN_MAX_MS = 5_000;
/** The backlog left by the open loop with the runs niced drains fully (up to this) before the one-box open loop. */
const BACKLOG_MAX_MS = Number(process.env["BENCH_BACKLOG_MAX_S"] ?? 300) * 1000;
const RUNS_NICE = Number(process.env["BENCH_RUNS_NICE"] ?? 19);
/** How open loop A keeps the runs off the API's CPU: "hold" (default) stops them (SIGSTOP) until it ends, so neither
 * their CPU nor their queries to the shared database compete; "nice" only lowers their priority. */
const RUNS_MODE = process.env["BENCH_RUNS_MODE"] === "nice" ? "nice" : "hold";
const TIMEOUT_MS = 5_000; // per request: an answer later than this counts as an error
const GOAL_P99_MS = 50;
const GOAL_RATIO = 0.3;
const ONE_SERVER = process.env["BENCH_ONE_SERVER"] === "1";

const args = new Set(process.argv.slice(2));
const PROFILE = args.has("--profile");

// ---------------------------------------------------------------------------------------------------------
// Setup helpers

/** The app's own createApiKey, on the bench's admin client (lib/db/admin.ts is `server-only`). */
async function makeApiKey(stack: DataStack): Promise<{ id: string; key: string }> {
  return createApiKey(adminClient(stack.supabaseUrl, stack.secretKey), "bench");
}

/** A stand-in for the Inngest event API that accepts every event and runs nothing. */
async function startEventStub(): Promise<{ url: string; events: () => number; stop: () => Promise<void> }> {
  let n = 0;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      let count = 1;
      try {
        const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as unknown;
        count = Array.isArray(body) ? body.length : 1;
      } catch {}
      n += count;
      const text = JSON.stringify({ ids: Array.from({ length: count }, () => randomUUID()), status: 200 });
      res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
      res.end(text);
    });
  });
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    events: () => n,
    stop: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** The engine and the double in their own process group (bench/lib/runs-child.ts), so they can be reniced. */
class RunsChild {
  private constructor(
    readonly proc: ChildProcess,
    readonly engineUrl: string,
    readonly doubleUrl: string,
  ) {}

  static async start(databaseUrl: string): Promise<RunsChild> {
    const proc = spawn(process.execPath, ["--import", "tsx", "bench/lib/runs-child.ts"], {
      cwd: root,
      detached: true, // its own process group, which renice() targets
      stdio: ["ignore", "inherit", "inherit", "ipc"],
      env: { ...process.env, BENCH_DATABASE_URL: databaseUrl },
    });
    killGroupOnExit(proc);
    const ready = await new Promise<RunsChildReady>((resolve, reject) => {
      proc.once("message", (m) => resolve(m as RunsChildReady));
      proc.once("exit", (code) => reject(new Error(`the engine's process exited (${code}) before it was ready`)));
    });
    return new RunsChild(proc, ready.engineUrl, ready.doubleUrl);
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    const exited = new Promise<void>((r) => this.proc.once("exit", () => r()));
    this.proc.kill("SIGTERM");
    const timer = setTimeout(() => {
      try {
        process.kill(-this.proc.pid!, "SIGKILL");
      } catch {}
    }, 5_000);
    await exited;
    clearTimeout(timer);
  }
}

/** What `engine.sync()` does: a PUT to the serve route makes the SDK register its functions with the engine. */
async function syncApp(serveUrl: string): Promise<void> {
  const res = await fetch(serveUrl, { method: "PUT" });
  if (!res.ok) throw new Error(`sync of ${serveUrl} failed (HTTP ${res.status}): ${await res.text()}`);
}

class LoadChild {
  private nextId = 1;
  private pending = new Map<number, { resolve: (r: LoadResult) => void; reject: (e: Error) => void }>();
  private constructor(readonly proc: ChildProcess) {
    proc.on("message", (m: LoadReply | { ready: true }) => {
      if ("ready" in m) return;
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if ("error" in m) p.reject(new Error(`load generator: ${m.error}`));
      else p.resolve(m.result);
    });
    proc.once("exit", (code) => {
      for (const p of this.pending.values()) p.reject(new Error(`load generator exited (${code})`));
      this.pending.clear();
    });
  }

  static async start(): Promise<LoadChild> {
    const proc = spawn(process.execPath, ["--import", "tsx", "bench/lib/load-child.ts"], {
      cwd: root,
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    await new Promise<void>((resolve, reject) => {
      proc.once("message", () => resolve());
      proc.once("exit", (code) => reject(new Error(`load generator exited (${code}) before it was ready`)));
    });
    return new LoadChild(proc);
  }

  run(job: LoadJobSpec): Promise<LoadResult> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.proc.send({ ...job, id } satisfies LoadJob);
    });
  }

  stop(): void {
    if (this.proc.exitCode === null) this.proc.kill("SIGTERM");
  }
}

// ---------------------------------------------------------------------------------------------------------

interface Phase {
  name: string;
  result: LoadResult;
  cpu: CpuUse;
}

interface Figures {
  /** GET /api/health at the start, the runs idle (nothing submitted yet). */
  health: Phase;
  /** C: health then POST, closed loop, the runs held (as in A) — what the goal's ratio is judged on. */
  healthHeld: Phase;
  postHeld: Phase;
  /** Unfinished tasks (B's backlog) held with the runs during C. */
  heldBacklog: number;
  /** The open loop with the runs at nice RUNS_NICE ("elsewhere"), and the tasks by status when it ended. */
  openSep: Phase;
  atSepEnd: Record<string, number>;
  /** BENCH_PROBE=1: the API server's GC pauses and loop stalls, Postgres's checkpoints and autovacuums during A. */
  probe: ProbeReport | null;
  /** The same open loop with everything at one priority. */
  open: Phase;
  atOpenEnd: Record<string, number>;
  /** Unfinished tasks when the one-box open loop began (the backlog that did not drain in time). */
  backlogLeft: number;
  drainCpu: CpuUse;
  drainMs: number;
  ranInDrain: number;
  pieces: Phase[];
  stubClosed: Phase;
  stubOpen: Phase;
  /** POSTs of the stub server's warm-up (its profile covers them). */
  stubWarm: number;
  stubEvents: number;
  post: Phase;
  final: Record<string, number>;
  appLines: string[];
  profiles: { stub: ProfileSummary | null; main: ProfileSummary | null };
}

async function main(): Promise<number> {
  const started = Date.now();
  log(`load average at the start: ${loadavg().map((x) => x.toFixed(2)).join(" ")} (1/5/15 min)`);
  const cleanups: (() => Promise<void> | void)[] = [];
  let cleaning: Promise<void> | undefined;
  const cleanup = () =>
    (cleaning ??= (async () => {
      for (const c of cleanups.reverse()) await Promise.resolve(c()).catch((e: unknown) => console.error(`[bench] cleanup: ${String(e)}`));
    })());
  const onSignal = (sig: NodeJS.Signals) => {
    console.error(`[bench] ${sig}: stopping`);
    void cleanup().then(() => process.exit(130));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);

  let stack: DataStack, runs: RunsChild, app: NextServer, apiKey: { id: string; key: string };
  let load: LoadChild, counter: pg.Client, dataDir: string, gate: EventGate;
  const components: Components = { benchPid: process.pid };

  try {
    // --- setup (any failure here exits non-zero) ---
    if (args.has("--no-build")) log(`--no-build: using the existing ${DIST_DIR}`);
    else build();

    dataDir = await mkdtemp(join(tmpdir(), "nightshift-bench-submit-"));
    const dir = dataDir;
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    stack = await startDataStack({ dataDir, persistent: false });
    cleanups.push(() => stack.stop());
    runs = await RunsChild.start(stack.databaseUrl);
    const runsChild = runs;
    cleanups.push(() => runsChild.stop());
    components.runsPgid = runs.proc.pid;

    // The API server sends its events through the gate (bench/lib/event-gate.ts): while the runs are held it answers
    // as Inngest Cloud's event API would, so the relay does all its work; the runs server talks to the engine itself.
    gate = await startEventGate(runs.engineUrl);
    const eventGate = gate;
    cleanups.push(() => eventGate.stop());
    if (PROFILE) await mkdir(join(dataDir, "prof-main"));
    app = await startNext(
      {
        SUPABASE_URL: stack.supabaseUrl,
        SUPABASE_SECRET_KEY: stack.secretKey,
        ANTHROPIC_BASE_URL: runs.doubleUrl,
        ANTHROPIC_API_KEY: "",
        INNGEST_DEV: gate.url,
      },
      { profileDir: PROFILE ? join(dataDir, "prof-main") : undefined, ...(PROBE ? { nodeArgs: PROBE_NODE_ARGS, stampLines: true } : {}) },
    );
    const appServer = app;
    cleanups.push(() => appServer.stop());
    components.nextPgid = app.proc.pid;
    if (ONE_SERVER) {
      await syncApp(`${app.url}/api/inngest`);
    } else {
      // The runs server: the same build and configuration; only the engine calls it.
      const runner = await startNext({
        SUPABASE_URL: stack.supabaseUrl,
        SUPABASE_SECRET_KEY: stack.secretKey,
        ANTHROPIC_BASE_URL: runs.doubleUrl,
        ANTHROPIC_API_KEY: "",
        INNGEST_DEV: runs.engineUrl,
      });
      cleanups.push(() => runner.stop());
      components.runnerPgid = runner.proc.pid;
      await syncApp(`${runner.url}/api/inngest`);
    }
    apiKey = await makeApiKey(stack);
    // The bench measures ingest while tasks run, not the research agent's queue or its money: with its seeded 2 slots
    // and $2 a day, thousands of submitted tasks would wait for a slot or park until the next budget window. Give it
    // room for the duration of the bench.
    {
      const { error } = await adminClient(stack.supabaseUrl, stack.secretKey)
        .from("agents")
        .update({ concurrency: 100, daily_budget_micros: 1_000_000_000_000 })
        .eq("id", "research");
      if (error) throw new Error(`could not raise research's concurrency: ${error.message}`);
    }

    counter = new pg.Client({ connectionString: stack.databaseUrl });
    counter.on("error", () => {});
    await counter.connect();
    const counterClient = counter;
    cleanups.push(() => counterClient.end());

    load = await LoadChild.start();
    const loadChild = load;
    cleanups.push(() => loadChild.stop());
    components.loadPid = load.proc.pid;
    log(`stack up in ${((Date.now() - started) / 1000).toFixed(1)} s: app ${app.url}, engine ${runs.engineUrl}, supabase ${stack.supabaseUrl}`);
  } catch (e) {
    console.error(`[bench] setup failed: ${e instanceof Error ? e.message : String(e)}`);
    await cleanup();
    return 1;
  }

  try {
    const taskSpec = (base: string, prompt: string): RequestSpec => ({
      url: `${base}/api/tasks`,
      method: "POST",
      headers: { authorization: `Bearer ${apiKey.key}`, "content-type": "application/json" },
      bodyTemplate: JSON.stringify({ agent: "research", prompt }),
      expectStatus: 202,
      timeoutMs: TIMEOUT_MS,
    });
    const postSpec = taskSpec(app.url, "Bench task %i: one line on checkpoints.");
    const healthSpec: RequestSpec = { url: `${app.url}/api/health`, method: "GET", expectStatus: 200, timeoutMs: TIMEOUT_MS };
    let seq = 0;

    /** Tasks by status, leaving out the rows the diagnostics insert without an event (they never run). */
    const taskCounts = async (): Promise<Record<string, number>> => {
      const { rows } = await counter.query<{ status: string; n: number }>(
        "select status::text, count(*)::int as n from public.tasks where prompt !~ '^bench-(rpc|stub) ' group by status",
      );
      return Object.fromEntries(rows.map((r) => [r.status, r.n]));
    };
    const unfinished = (c: Record<string, number>) => (c.queued ?? 0) + (c.running ?? 0);
    const drain = async (maxMs: number) => {
      const t0 = Date.now();
      for (;;) {
        const c = await taskCounts();
        if (unfinished(c) === 0 || Date.now() - t0 > maxMs) return { counts: c, ms: Date.now() - t0 };
        await new Promise((r) => setTimeout(r, 200));
      }
    };
    const phase = async (name: string, job: LoadJobSpec): Promise<Phase> => {
      const load1 = loadavg()[0]!;
      const a = snapshot(components);
      const result = await load.run(job);
      const cpu = cpuBetween(a, snapshot(components));
      const errs = Object.entries(result.errors).map(([k, v]) => `${k}×${v}`).join(" ");
      log(
        `${name}: ${result.ok}/${result.sent} ok, ${result.achievedRate.toFixed(0)}/s, p50 ${fmtMs(result.latency.p50)} ms, ` +
          `p99 ${fmtMs(result.latency.p99)} ms, max ${fmtMs(result.latency.max)} ms${errs ? `, errors ${errs}` : ""}` +
          ` (load ${load1.toFixed(2)} before, ${loadavg()[0]!.toFixed(2)} after)`,
      );
      return { name, result, cpu };
    };

    // --- warm-up: load the route modules, JIT, fill connection pools ---
    await load.run({ kind: "open", spec: healthSpec, rate: 100, durationMs: 1_500 });
    await load.run({ kind: "open", spec: postSpec, rate: 50, durationMs: 3_000, seqStart: (seq += 1_000_000) });
    const warm = await drain(DRAIN_MAX_MS);
    log(`warm-up done (${warm.counts.completed ?? 0} tasks run, drained in ${warm.ms} ms)`);

    // --- baseline: the trivial route, quiet server ---
    const health = await phase(`closed loop GET /api/health ×${CONCURRENCY}`, {
      kind: "closed",
      spec: healthSpec,
      concurrency: CONCURRENCY,
      durationMs: CLOSED_MS,
    });

    // --- open loop at the target rate, the runs "elsewhere": the runs server, the engine and the double at low
    // priority, so they use only the CPU the API path leaves (on Vercel they are other machines) ---
    const runsGroups = [components.runsPgid!, ...(components.runnerPgid ? [components.runnerPgid] : [])];
    const runsAt = (nice: number) => {
      const n = renice(runsGroups, nice);
      log(`the runs (engine, double${ONE_SERVER ? "" : ", runs server"}) at nice ${nice} (${n} threads)`);
    };
    // Held: the API server's event batches are accepted by the gate meanwhile (as Inngest Cloud would) and delivered
    // to the engine, in order, once it runs again.
    const runsHeld = async (held: boolean) => {
      if (held) gate.hold();
      for (const g of runsGroups) process.kill(-g, held ? "SIGSTOP" : "SIGCONT");
      const kept = held ? null : await gate.release();
      log(
        `the runs (engine, double${ONE_SERVER ? "" : ", runs server"}) ${held ? "held (SIGSTOP)" : "resumed (SIGCONT)"}` +
          (kept ? `; ${kept.events} event(s) the gate accepted meanwhile delivered to the engine in ${kept.batches} batch(es)` : ""),
      );
    };
    const runsAway = async (away: boolean) => (RUNS_MODE === "hold" ? runsHeld(away) : runsAt(away ? RUNS_NICE : 0));
    // Never leave them stopped, whatever happens.
    cleanups.push(() => {
      if (RUNS_MODE === "hold") for (const g of runsGroups) try { process.kill(-g, "SIGCONT"); } catch {}
    });
    await runsAway(true);
    const { openSep, atSepEnd, probe } = await (async () => {
      try {
        const dbBefore = PROBE ? await dbActivity(counter) : null;
        const p = await phase(`open loop POST /api/tasks @${RATE}/s, runs ${RUNS_MODE === "hold" ? "held" : `at nice ${RUNS_NICE}`}`, {
          kind: "open",
          spec: postSpec,
          rate: RATE,
          durationMs: OPEN_MS,
          seqStart: (seq += 1_000_000),
        });
        let probe: ProbeReport | null = null;
        if (dbBefore) {
          const dbAfter = await dbActivity(counter);
          const from = p.result.startedAtMs ?? 0;
          probe = {
            events: probeEvents(app.lines, from, from + (p.result.perSecond?.length ?? 0) * 1000),
            db: {
              checkpoints: dbAfter.checkpoints - dbBefore.checkpoints,
              autovacuums: dbAfter.autovacuums - dbBefore.autovacuums,
              autoanalyzes: dbAfter.autoanalyzes - dbBefore.autoanalyzes,
            },
          };
        }
        return { openSep: p, atSepEnd: await taskCounts(), probe };
      } finally {
        await runsAway(false);
      }
    })();

    // --- its backlog drains at one priority with no requests coming in: CPU per task run ---
    const drainA = snapshot(components);
    const drained = await drain(BACKLOG_MAX_MS);
    const drainCpu = cpuBetween(drainA, snapshot(components));
    const ranInDrain = (drained.counts.completed ?? 0) - (atSepEnd.completed ?? 0);
    const backlogLeft = unfinished(drained.counts);
    log(
      `after it: ${atSepEnd.completed ?? 0} completed, ${unfinished(atSepEnd)} queued/running; ` +
        `${ranInDrain} run in the next ${(drained.ms / 1000).toFixed(1)} s` +
        (backlogLeft ? `, ${backlogLeft} still left` : ", drained"),
    );

    // --- the same open loop with everything on this box at one priority ---
    const open = await phase(`open loop POST /api/tasks @${RATE}/s, one priority`, {
      kind: "open",
      spec: postSpec,
      rate: RATE,
      durationMs: OPEN_MS,
      seqStart: (seq += 1_000_000),
    });
    const atOpenEnd = await taskCounts();
    const settled = await drain(DRAIN_MAX_MS);
    log(
      `after it: ${atOpenEnd.completed ?? 0} completed, ${unfinished(atOpenEnd)} queued/running; ` +
        `${(settled.counts.completed ?? 0) - (atOpenEnd.completed ?? 0)} run in the next ${(settled.ms / 1000).toFixed(1)} s` +
        (unfinished(settled.counts) ? `, ${unfinished(settled.counts)} still left` : ", drained"),
    );

    // --- C. the closed loops the goal is judged on: the runs elsewhere, as in A. The runs server, the engine and the
    // double held (SIGSTOP) — and with them whatever of B's backlog is still unfinished — so the API server, PostgREST
    // and Postgres have the box to themselves, as the API's invocations have theirs on Vercel; the events are accepted
    // by the gate. Health first, then POST, back to back under the same conditions. The diagnostics that need no
    // engine run in the same hold. ---
    const heldAt = await taskCounts();
    await runsAway(true);
    let healthHeld: Phase, postHeld: Phase;
    const pieces: Phase[] = [];
    let stubClosed: Phase, stubOpen: Phase, stubWarm: number, stubProfile: ProfileSummary | null;
    const stub = await startEventStub();
    cleanups.push(() => stub.stop());
    try {
      healthHeld = await phase(`C. closed loop GET /api/health ×${CONCURRENCY}, runs held`, {
        kind: "closed",
        spec: healthSpec,
        concurrency: CONCURRENCY,
        durationMs: CLOSED_MS,
      });
      postHeld = await phase(`C. closed loop POST /api/tasks ×${CONCURRENCY}, runs held`, {
        kind: "closed",
        spec: postSpec,
        concurrency: CONCURRENCY,
        durationMs: CLOSED_MS,
        seqStart: (seq += 1_000_000),
      });

      // --- diagnostics, the runs still held: what a POST calls, each alone ---
      const rest = (fn: string, body: string): RequestSpec => ({
        url: `${stack.supabaseUrl}/rest/v1/rpc/${fn}`,
        method: "POST",
        headers: { apikey: stack.secretKey, authorization: `Bearer ${stack.secretKey}`, "content-type": "application/json" },
        bodyTemplate: body,
        expectStatus: 200,
      });
      pieces.push(
        await phase("piece: PostgREST rpc api_key_hash", {
          kind: "closed",
          spec: rest("api_key_hash", JSON.stringify({ p_key_id: apiKey.id })),
          concurrency: CONCURRENCY,
          durationMs: PIECE_MS,
        }),
      );
      pieces.push(
        await phase("piece: PostgREST rpc create_task", {
          kind: "closed",
          spec: rest(
            "create_task",
            JSON.stringify({
              p_agent_id: "research",
              p_prompt: "bench-rpc %i",
              p_input: null,
              p_priority: 0,
              p_mode: "now",
              p_require_approval: false,
              p_callback_url: null,
              p_api_key_id: apiKey.id,
              p_idempotency_key: null,
              p_request_hash: "0".repeat(64),
            }),
          ),
          concurrency: CONCURRENCY,
          durationMs: PIECE_MS,
          seqStart: (seq += 1_000_000),
        }),
      );
      // --- diagnostics: the same POST against a third next-server whose event API is a stub (no runs) ---
      if (PROFILE) await mkdir(join(dataDir, "prof-stub"));
      const stubApp = await startNext(
        {
          SUPABASE_URL: stack.supabaseUrl,
          SUPABASE_SECRET_KEY: stack.secretKey,
          ANTHROPIC_BASE_URL: runs.doubleUrl,
          ANTHROPIC_API_KEY: "",
          INNGEST_DEV: stub.url,
        },
        { profileDir: PROFILE ? join(dataDir, "prof-stub") : undefined },
      );
      cleanups.push(() => stubApp.stop());
      const stubSpec = taskSpec(stubApp.url, "bench-stub %i");
      stubWarm = (await load.run({ kind: "open", spec: stubSpec, rate: 100, durationMs: 1_500, seqStart: (seq += 1_000_000) })).sent;
      components.nextPgid = stubApp.proc.pid;
      stubClosed = await phase(`stub events: closed loop POST ×${CONCURRENCY}`, {
        kind: "closed",
        spec: stubSpec,
        concurrency: CONCURRENCY,
        durationMs: STUB_MS,
        seqStart: (seq += 1_000_000),
      });
      stubOpen = await phase(`stub events: open loop POST @${RATE}/s`, {
        kind: "open",
        spec: stubSpec,
        rate: RATE,
        durationMs: STUB_MS,
        seqStart: (seq += 1_000_000),
      });
      components.nextPgid = app.proc.pid;
      await stubApp.stop();
      stubProfile = PROFILE ? summarizeProfiles(join(dataDir, "prof-stub")) : null;
    } finally {
      await runsAway(false);
    }

    pieces.push(
      await phase("piece: engine event API (unrouted event)", {
        kind: "closed",
        spec: {
          url: `${runs.engineUrl}/e/bench`,
          method: "POST",
          headers: { "content-type": "application/json" },
          bodyTemplate: JSON.stringify({ name: "bench/unrouted", data: { i: "%i" } }),
          expectStatus: 200,
        },
        concurrency: CONCURRENCY,
        durationMs: PIECE_MS,
      }),
    );

    // --- D. closed loop POST with everything on this box: B's and C's backlog run meanwhile at one priority ---
    const post = await phase(`D. closed loop POST /api/tasks ×${CONCURRENCY}, runs on this box`, {
      kind: "closed",
      spec: postSpec,
      concurrency: CONCURRENCY,
      durationMs: CLOSED_MS,
      seqStart: (seq += 1_000_000),
    });

    const final = await drain(FINAL_DRAIN_MAX_MS);
    let mainProfile: ProfileSummary | null = null;
    if (PROFILE) {
      await app.stop();
      mainProfile = summarizeProfiles(join(dataDir, "prof-main"));
    }
    report({
      health,
      healthHeld,
      postHeld,
      heldBacklog: unfinished(heldAt),
      openSep,
      atSepEnd,
      probe,
      open,
      atOpenEnd,
      backlogLeft,
      drainCpu,
      drainMs: drained.ms,
      ranInDrain,
      pieces,
      stubClosed,
      stubOpen,
      stubWarm,
      stubEvents: stub.events(),
      post,
      final: final.counts,
      appLines: app.lines,
      profiles: { stub: stubProfile, main: mainProfile },
    });
    log(`done in ${((Date.now() - started) / 1000).toFixed(0)} s`);
    return 0;
  } catch (e) {
    console.error(`[bench] run failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n${app.tail()}`);
    return 0; // not a setup failure
  } finally {
    await cleanup();
  }
}

// ---------------------------------------------------------------------------------------------------------

function report(r: Figures): void {
  const o = r.open.result;
  const os = r.openSep.result;
  // The goal's ratio: C, both in the API server with the runs held (elsewhere, as in A). D (runs on this box) is kept
  // for information: there the API server shares the 2 cores with the runs of B's and C's backlog.
  const ratio = r.postHeld.result.achievedRate / r.healthHeld.result.achievedRate;
  const ratioBox = r.post.result.achievedRate / r.health.result.achievedRate;
  const ratioStub = r.stubClosed.result.achievedRate / r.healthHeld.result.achievedRate;
  const p99ok = os.latency.p99 < GOAL_P99_MS && os.ok === os.sent;
  const p99okBox = o.latency.p99 < GOAL_P99_MS && o.ok === o.sent;
  const ratioOk = ratio >= GOAL_RATIO;
  const cpu = cpus();
  const line = "─".repeat(110);
  const pct = (x: number) => `${(x * 100).toFixed(1)}%`;

  console.log(`\n${line}\nPOST /api/tasks benchmark — ${new Date().toISOString()}, load average ${loadavg().map((x) => x.toFixed(2)).join(" ")} (1/5/15 min) at the end`);
  console.log(
    `machine: ${cpu.length} cores (${cpu[0]?.model.trim() ?? "unknown cpu"}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM, ` +
      `node ${process.version}; everything on 127.0.0.1`,
  );
  console.log(
    `app: next start (${DIST_DIR})${ONE_SERVER ? ", serving /api/inngest too" : "; runs served by a second next start (the engine calls only that one)"}; ` +
      `local engine and Claude double in one child process; Supabase /rest/v1 proxy in the bench process; embedded Postgres + PostgREST`,
  );
  console.log(line);

  const openBlock = (title: string, x: LoadResult, counts: Record<string, number>) => {
    console.log(`\n${title}`);
    console.log(`  sent ${x.sent}, accepted (202) ${x.ok}, errors (non-202) ${x.sent - x.ok}${x.sent - x.ok ? ` ${JSON.stringify(x.errors)}` : ""}`);
    console.log(`  achieved rate ${x.achievedRate.toFixed(1)} /s`);
    console.log(
      `  latency ms:  p50 ${fmtMs(x.latency.p50)}  p90 ${fmtMs(x.latency.p90)}  p99 ${fmtMs(x.latency.p99)}  ` +
        `p99.9 ${fmtMs(x.latency.p999)}  max ${fmtMs(x.latency.max)}  mean ${fmtMs(x.latency.mean)}`,
    );
    if (x.sendLag) console.log(`  generator send lag ms: p99 ${fmtMs(x.sendLag.p99)}, max ${fmtMs(x.sendLag.max)}`);
    if (x.perSecond?.length) console.log(`  p99 per second ms: ${x.perSecond.map((b) => fmtMs(b.p99)).join(" ")}`);
    console.log(`  tasks when it ended: ${counts.completed ?? 0} completed, ${(counts.queued ?? 0) + (counts.running ?? 0)} queued or running`);
  };
  console.log(`\nOpen loop: POST /api/tasks at ${RATE} requests/s for ${OPEN_MS / 1000} s, twice`);
  console.log(`  (latency from each request's scheduled start, so queueing counts; ${TIMEOUT_MS / 1000} s client timeout)`);
  openBlock(
    `A. runs elsewhere: the ${ONE_SERVER ? "engine and the double" : "runs server, the engine and the double"} ` +
      (RUNS_MODE === "hold" ? "held (SIGSTOP) until it ends, then the backlog runs" : `at nice ${RUNS_NICE} (the database shared at normal priority)`) +
      " — closest to Vercel",
    os,
    r.atSepEnd,
  );
  if (r.probe && os.perSecond && os.startedAtMs) printProbe(os.perSecond, os.startedAtMs, r.probe);
  console.log(
    `  its backlog: ${r.ranInDrain} tasks completed in the ${(r.drainMs / 1000).toFixed(1)} s after it, one priority, no requests ` +
      `(${r.drainMs > 0 ? ((r.ranInDrain * 1000) / r.drainMs).toFixed(1) : "–"} tasks/s)` +
      (r.backlogLeft ? `; ${r.backlogLeft} still unfinished when B began` : ""),
  );
  openBlock(`B. everything on this box at one priority (the runs compete with the API for ${cpus().length} cores)`, o, r.atOpenEnd);
  const fin = r.final;
  const total = Object.values(fin).reduce((a, b) => a + b, 0);
  const other = Object.entries(fin).filter(([k]) => k !== "completed");
  console.log(
    `  by the end of the bench: ${fin.completed ?? 0} of the ${total} tasks submitted to the engine completed` +
      (other.length ? ` (${other.map(([k, v]) => `${k} ${v}`).join(", ")})` : ""),
  );

  const row = (name: string, p: Phase) => {
    const x = p.result;
    const errs = x.sent - x.ok;
    console.log(
      `  ${name.padEnd(52)} ${x.achievedRate.toFixed(0).padStart(6)} /s   p50 ${fmtMs(x.latency.p50).padStart(6)}  ` +
        `p99 ${fmtMs(x.latency.p99).padStart(6)} ms` +
        (errs ? `   errors ${errs} ${JSON.stringify(x.errors)}` : ""),
    );
  };
  console.log(`\nClosed loop, ${CONCURRENCY} clients, ${CLOSED_MS / 1000} s each, against the API server`);
  console.log(
    `C. runs elsewhere, as in A — the goal is judged on this line: the ${ONE_SERVER ? "engine and the double" : "runs server, the engine and the double"} held` +
      ` (SIGSTOP)${r.heldBacklog ? ` with B's unfinished backlog (${r.heldBacklog} tasks)` : ""}; events accepted by the gate, delivered after`,
  );
  row("GET /api/health", r.healthHeld);
  row("POST /api/tasks", r.postHeld);
  console.log(`  ratio POST / health: ${pct(ratio)}`);
  console.log(`D. runs on this box (for information; not the goal's setting: the API shares the cores with the backlog's runs)`);
  row("GET /api/health (at the start, nothing submitted yet)", r.health);
  row("POST /api/tasks (B's and C's backlog running meanwhile)", r.post);
  console.log(`  ratio POST / health: ${pct(ratioBox)}`);

  console.log(`\nDiagnostics (${CONCURRENCY} clients; all but the engine's event API with the runs held, as in C)`);
  for (const p of r.pieces) row(`${p.name.replace(/^piece: /, "")} (${PIECE_MS / 1000} s)`, p);
  row(`POST, event API stubbed: closed loop (${STUB_MS / 1000} s)`, r.stubClosed);
  const so = r.stubOpen.result;
  console.log(
    `  POST, event API stubbed: open loop @${RATE}/s (${STUB_MS / 1000} s): ${so.ok}/${so.sent} accepted, ` +
      `p50 ${fmtMs(so.latency.p50)}  p90 ${fmtMs(so.latency.p90)}  p99 ${fmtMs(so.latency.p99)}  max ${fmtMs(so.latency.max)} ms`,
  );
  console.log(`  ratio POST (stubbed events, a server of its own) / health in C: ${pct(ratioStub)}`);

  console.log(`\nCPU by component: % of one core (the machine has ${cpu.length}) and CPU ms per request`);
  const cols: { name: string; cpu: CpuUse; requests: number }[] = [
    { name: "health closed", cpu: r.health.cpu, requests: r.health.result.sent },
    { name: "C. health, held", cpu: r.healthHeld.cpu, requests: r.healthHeld.result.sent },
    { name: "C. POST, held", cpu: r.postHeld.cpu, requests: r.postHeld.result.sent },
    { name: `A. open, runs ${RUNS_MODE === "hold" ? "held" : `nice ${RUNS_NICE}`}`, cpu: r.openSep.cpu, requests: r.openSep.result.sent },
    { name: "backlog drain†", cpu: r.drainCpu, requests: r.ranInDrain },
    { name: "B. open, one box", cpu: r.open.cpu, requests: r.open.result.sent },
    { name: "POST stubbed closed", cpu: r.stubClosed.cpu, requests: r.stubClosed.result.sent },
    { name: "D. POST, runs on", cpu: r.post.cpu, requests: r.post.result.sent },
  ];
  const W = 20;
  console.log(`  ${"".padEnd(22)}${cols.map((c) => c.name.padStart(W)).join("")}`);
  for (const n of COMPONENT_NAMES) {
    const cells = cols.map((c) => {
      const share = (c.cpu.cpuMs[n] / c.cpu.wallMs) * 100;
      const per = c.requests ? c.cpu.cpuMs[n] / c.requests : NaN;
      return `${share.toFixed(0).padStart(4)}% ${fmtMs(per).padStart(6)} ms`.padStart(W);
    });
    console.log(`  ${n.padEnd(22)}${cells.join("")}`);
  }
  console.log(`  ${"machine busy (of 2)".padEnd(22)}${cols.map((c) => `${(c.cpu.machineBusy * 100).toFixed(0)}%`.padStart(W)).join("")}`);
  console.log(`  ${"  irq+softirq".padEnd(22)}${cols.map((c) => `${(c.cpu.machineIrq * 100).toFixed(0)}%`.padStart(W)).join("")}`);
  console.log(
    `  † per task completed while the engine ran the backlog with no requests coming in` +
      (r.ranInDrain < 30 ? ` (only ${r.ranInDrain} completed: not a per-run cost)` : ""),
  );
  const noisy = cols.filter((c) => c.cpu.cpuMs["other processes"] / c.cpu.wallMs > 0.1);
  if (noisy.length) {
    console.log(`  ! processes outside the bench used the CPU during: ${noisy.map((c) => `${c.name} (${c.cpu.topOthers.join(", ")})`).join("; ")}`);
    console.log(`    — the machine was shared, so those figures are pessimistic; rerun on a quiet machine.`);
  }

  // Ceilings implied by the CPU each request costs: robust to a shared machine, unlike the measured rates.
  const SUT = COMPONENT_NAMES.filter((n) => n !== "load generator" && n !== "other processes");
  const per = (c: CpuUse, n: number, which: readonly string[]) => which.reduce((a, k) => a + c.cpuMs[k as keyof CpuUse["cpuMs"]], 0) / n;
  const hNext = per(r.health.cpu, r.health.result.sent, ["next-server"]);
  const pNext = per(r.stubClosed.cpu, r.stubClosed.result.sent, ["next-server"]);
  const pAll = per(r.stubClosed.cpu, r.stubClosed.result.sent, SUT);
  // Per-run figures need enough runs finishing in the drain window (tasks that sleep or wait do not).
  const enoughRuns = r.ranInDrain >= 30;
  // The runs' own server when they have one (the API server is idle in the drain).
  const tNext = enoughRuns ? per(r.drainCpu, r.ranInDrain, [ONE_SERVER ? "next-server" : "runs next-server"]) : NaN;
  const tAll = enoughRuns ? per(r.drainCpu, r.ranInDrain, SUT) : NaN;
  const n = cpu.length;
  console.log(`
What bounds it (ceilings implied by CPU per request; next-server is one event loop = one core)`);
  console.log(`  GET /api/health:            next-server ${fmtMs(hNext)} ms → ≤ ${(1000 / hNext).toFixed(0)}/s`);
  console.log(
    `  POST, handler only:         next-server ${fmtMs(pNext)} ms → ≤ ${(1000 / pNext).toFixed(0)}/s; ` +
      `all components ${fmtMs(pAll)} ms → ≤ ${((n * 1000) / pAll).toFixed(0)}/s on ${n} cores`,
  );
  if (enoughRuns) {
    console.log(`  one task run (engine):      ${ONE_SERVER ? "" : "runs "}next-server ${fmtMs(tNext)} ms, all components ${fmtMs(tAll)} ms`);
    console.log(
      `  POST + its run, one box:    next-server ${fmtMs(pNext + tNext)} ms → ≤ ${(1000 / (pNext + tNext)).toFixed(0)} tasks/s; ` +
        `all ${fmtMs(pAll + tAll)} ms → ≤ ${((n * 1000) / (pAll + tAll)).toFixed(0)} tasks/s on ${n} cores`,
    );
  } else {
    console.log(`  one task run (engine):      n/a — only ${r.ranInDrain} tasks completed in the drain window (runs sleeping or waiting?)`);
  }
  console.log(`  (all components = next-server(s) + PostgREST + Postgres + the engine and double + the bench's REST proxy and event stub)`);

  for (const [name, p] of [
    ["next-server with stubbed events (POST handler only)", r.profiles.stub],
    ["next-server of the main run (POSTs + task runs)", r.profiles.main],
  ] as const) {
    if (!p) continue;
    console.log(`\nCPU profile: ${name}: ${(p.busyMs / 1000).toFixed(1)} s busy of ${(p.totalMs / 1000).toFixed(1)} s profiled`);
    const fmt = (xs: [string, number][]) => xs.map(([k, ms]) => `${k} ${pct(ms / p.busyMs)}`).join(", ");
    console.log(`  self time by area:    ${fmt(p.byArea.slice(0, 10))}`);
    console.log(`  by calling package:   ${fmt(p.byOwner.slice(0, 10))}`);
    if (name.startsWith("next-server with stubbed events")) {
      // Every request this server answered was a POST (warm-up, closed loop, open loop): CPU per POST by stage.
      const posts = r.stubWarm + r.stubClosed.result.sent + r.stubOpen.result.sent;
      const startup = p.byStage.find(([k]) => k.startsWith("startup"))?.[1] ?? 0;
      console.log(`  per POST by stage (${posts} POSTs, startup left out: ${fmtMs((p.busyMs - startup) / posts)} ms in all):`);
      for (const [k, ms] of p.byStage) {
        if (k.startsWith("startup")) continue;
        console.log(`    ${fmtMs(ms / posts).padStart(7)} ms  ${pct(ms / (p.busyMs - startup)).padStart(6)}  ${k}`);
      }
    }
    console.log(`  hottest functions:`);
    for (const [f, ms] of p.topFunctions.slice(0, 10)) console.log(`    ${pct(ms / p.busyMs).padStart(6)}  ${f}`);
  }

  console.log(`\nGoals`);
  const lat = (x: LoadResult) =>
    `p99 ${fmtMs(x.latency.p99)} ms` +
    (x.latency.p99 >= GOAL_P99_MS ? `, ${(x.latency.p99 / GOAL_P99_MS).toFixed(1)}× the goal` : "") +
    (x.ok !== x.sent ? `; ${x.sent - x.ok} of ${x.sent} requests failed` : "");
  console.log(`  p99 < ${GOAL_P99_MS} ms at ${RATE} requests/s, runs elsewhere (A): ${p99ok ? "MET" : "MISSED"}  (${lat(os)})`);
  console.log(`    all on one box (B): ${p99okBox ? "met" : "missed"} (${lat(o)}); event API stubbed, runs held: p99 ${fmtMs(so.latency.p99)} ms`);
  console.log(
    `  POST ≥ ${GOAL_RATIO * 100}% of the trivial route, runs elsewhere (C): ${ratioOk ? "MET" : "MISSED"}  (${pct(ratio)}: ` +
      `${r.postHeld.result.achievedRate.toFixed(0)} / ${r.healthHeld.result.achievedRate.toFixed(0)} per s)`,
  );
  console.log(
    `    runs on this box (D): ${pct(ratioBox)}; event API stubbed, runs held: ${pct(ratioStub)}`,
  );
  const appErrors = r.appLines.filter((l) => /error|could not|fail/i.test(l));
  if (appErrors.length) console.log(`\nnext start printed ${appErrors.length} error line(s); the last: ${appErrors.slice(-2).join(" | ")}`);
  console.log(line);
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
