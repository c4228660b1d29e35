// npm run bench:budget — reserve + settle pairs through supabase.rpc against the embedded Supabase data stack
// (Postgres + PostgREST behind its /rest/v1 proxy): 32 concurrent callers on one agent, whose daily cap runs out
// during the run so refusals happen too. Prints pairs/s, p50/p99 latency of a pair, refusals, the overspend
// (committed vs cap; must be 0) and where the CPU went. A second, shorter run calls the same functions over direct
// Postgres connections, to tell the database's own limit from the HTTP path's.
//
// The data stack runs in a child process, as Supabase runs apart from the app: the load generator's event loop
// (32 supabase-js callers) is not shared with the /rest/v1 proxy's.
//
//   npx tsx bench/budget.ts            BENCH_SECONDS=5 BENCH_CONCURRENCY=32 by default
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { cpus, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createClient } from "@supabase/supabase-js";
import pg from "pg";
import WebSocket from "ws";
import { reserveBudget, settleBudget } from "../lib/budget";
import type { AdminClient } from "../lib/db/admin";
import type { Database } from "../lib/db/database.types";
import { cpuMs } from "./lib/procs";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 32);
const SQL_SECONDS = 3;
const MODEL = "claude-haiku-4-5";
/** Each call reserves this worst case and settles an actual between 20% and 70% of it. */
const RESERVE = 10_000;
const actualFor = (n: number) => 2_000 + ((n * 2_654_435_761) % 5_000);
const NOW = "2026-11-26T15:00:00Z"; // one fixed budget window for the whole run

interface StackInfo {
  supabaseUrl: string;
  secretKey: string;
  databaseUrl: string;
}

// ---------------------------------------------------------------------------------------------------------------
// Child mode: run the data stack until our parent closes stdin.
async function serveStack(dataDir: string): Promise<void> {
  const { startDataStack } = await import("../local/data-stack");
  const stack = await startDataStack({ dataDir, persistent: false, log: (l) => process.stderr.write(`${l}\n`) });
  const info: StackInfo = { supabaseUrl: stack.supabaseUrl, secretKey: stack.secretKey, databaseUrl: stack.databaseUrl };
  process.stdout.write(`${JSON.stringify({ ready: true, ...info })}\n`);
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await stack.stop().catch(() => {});
    process.exit(0);
  };
  process.stdin.on("end", stop);
  process.stdin.on("close", stop);
  process.stdin.resume();
  process.on("SIGTERM", stop);
}

async function startStackProcess(dataDir: string): Promise<{ child: ChildProcess; info: StackInfo }> {
  const child = spawn(process.execPath, ["--import", "tsx", fileURLToPath(import.meta.url), "--serve-stack", dataDir], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const info = await new Promise<StackInfo>((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (b: Buffer) => {
      out += b.toString();
      const line = out.split("\n").find((l) => l.includes('"ready":true'));
      if (line) resolve(JSON.parse(line) as StackInfo);
    });
    child.once("exit", (c) => reject(new Error(`data stack exited (${c})`)));
  });
  return { child, info };
}

/** The app's admin client (lib/db/admin.ts), built here because that module is `server-only` and throws outside
 * a React Server bundle; same options. */
function adminClient(info: StackInfo): AdminClient {
  return createClient<Database>(info.supabaseUrl, info.secretKey, {
    auth: { persistSession: false, autoRefreshToken: false },
    realtime: { transport: WebSocket as never },
  });
}

// ---------------------------------------------------------------------------------------------------------------

function cpuSnapshot(stackPid: number) {
  return {
    postgres: cpuMs({ comm: "postgres" }),
    postgrest: cpuMs({ comm: "postgrest" }),
    proxy: cpuMs({ pid: stackPid }),
    bench: cpuMs({ pid: process.pid }),
  };
}

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;

async function query<T extends pg.QueryResultRow>(url: string, text: string, params: unknown[] = []): Promise<T[]> {
  const c = new pg.Client({ connectionString: url });
  c.on("error", () => {});
  await c.connect();
  try {
    return (await c.query<T>(text, params)).rows;
  } finally {
    await c.end();
  }
}

async function createAgent(url: string, id: string, capMicros: number, tasks = CONCURRENCY): Promise<string[]> {
  await query(
    url,
    `insert into public.agents (id, display_name, model, system_prompt, daily_budget_micros, budget_timezone)
     values ($1, $1, $2, 'bench', $3, 'America/New_York')`,
    [id, MODEL, capMicros],
  );
  const rows = await query<{ id: string }>(
    url,
    `insert into public.tasks (agent_id, prompt) select $1, 'bench ' || g from generate_series(1, $2) g returning id`,
    [id, tasks],
  );
  return rows.map((r) => r.id);
}

interface RunResult {
  pairs: number;
  refused: number;
  errors: string[];
  pairMs: number[];
  refusalMs: number[];
  wallMs: number;
  /** ms from start to the completion of the last successful pair */
  pairsSpanMs: number;
}

type Pair = (task: string, step: string, n: number, caller: number) => Promise<boolean>;

/** CONCURRENCY callers, each on its own task, doing reserve → settle until the deadline. */
async function runCallers(seconds: number, pair: Pair, tasks: string[]): Promise<RunResult> {
  const r: RunResult = { pairs: 0, refused: 0, errors: [], pairMs: [], refusalMs: [], wallMs: 0, pairsSpanMs: 0 };
  const t0 = performance.now();
  const deadline = t0 + seconds * 1000;
  let n = 0;
  await Promise.all(
    tasks.map(async (task, caller) => {
      let step = 0;
      while (performance.now() < deadline) {
        const i = n++;
        const start = performance.now();
        try {
          const ok = await pair(task, `turn-${++step}`, i, caller);
          const end = performance.now();
          if (ok) {
            r.pairs++;
            r.pairMs.push(end - start);
            r.pairsSpanMs = Math.max(r.pairsSpanMs, end - t0);
          } else {
            r.refused++;
            r.refusalMs.push(end - start);
          }
        } catch (e) {
          if (r.errors.length < 5) r.errors.push((e as Error).message);
          else r.errors.length++;
        }
      }
    }),
  );
  r.wallMs = performance.now() - t0;
  r.pairMs.sort((a, b) => a - b);
  r.refusalMs.sort((a, b) => a - b);
  return r;
}

/** reserve + settle through supabase.rpc; `agentFor(caller)` picks the agent. */
function viaRpc(db: AdminClient, agentFor: (caller: number) => string): Pair {
  return async (taskId, stepId, n, caller) => {
    const agentId = agentFor(caller);
    const res = await reserveBudget(db, { agentId, taskId, stepId, model: MODEL, amountMicros: RESERVE, now: NOW });
    if (!res.ok) return false;
    await settleBudget(db, {
      taskId,
      stepId,
      actualMicros: actualFor(n),
      usage: { input_tokens: 900, output_tokens: 120 },
      now: NOW,
    });
    return true;
  };
}

/** The same two functions over direct Postgres connections (no HTTP, PostgREST or supabase-js). */
function viaSql(pool: pg.Pool, agentFor: (caller: number) => string): Pair {
  return async (task, step, n, caller) => {
    const { rows } = await pool.query<{ ok: boolean }>(`select ok from public.reserve_budget($1, $2, $3, $4, $5, $6)`, [
      agentFor(caller),
      task,
      step,
      MODEL,
      RESERVE,
      NOW,
    ]);
    if (!rows[0]!.ok) return false;
    await pool.query(`select 1 from public.settle_budget($1, $2, $3, 900, 120, 0, 0, $4)`, [task, step, actualFor(n), NOW]);
    return true;
  };
}

/** CONCURRENCY agents with one task each: callers share no budget row. */
async function createAgentPerCaller(url: string, prefix: string): Promise<{ tasks: string[]; agentFor: (c: number) => string }> {
  const tasks: string[] = [];
  for (let i = 0; i < CONCURRENCY; i++) tasks.push(...(await createAgent(url, `${prefix}-${i}`, 1e15, 1)));
  return { tasks, agentFor: (c) => `${prefix}-${c}` };
}

/** Durable commits per second of one connection updating one row: the floor of a lock held through commit. */
async function commitLatencyMs(url: string): Promise<number> {
  const c = new pg.Client({ connectionString: url });
  c.on("error", () => {});
  await c.connect();
  try {
    await c.query("create table if not exists bench_commit (id int primary key, n bigint not null)");
    await c.query("insert into bench_commit values (1, 0) on conflict do nothing");
    const n = 300;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) await c.query("update bench_commit set n = n + 1 where id = 1");
    return (performance.now() - t0) / n;
  } finally {
    await c.query("drop table if exists bench_commit").catch(() => {});
    await c.end();
  }
}

async function checkLedger(url: string, agentId: string) {
  const [row] = await query<Record<string, string>>(
    url,
    `select a.daily_budget_micros::text as cap,
            (select (coalesce(sum(reserved_micros) filter (where status = 'reserved'), 0)
                   + coalesce(sum(actual_micros) filter (where status = 'settled'), 0))::text
               from public.budget_reservations r where r.agent_id = a.id) as ledger_committed,
            (select count(*) filter (where status = 'reserved')::text from public.budget_reservations r where r.agent_id = a.id) as open,
            (select count(*) filter (where status = 'settled')::text from public.budget_reservations r where r.agent_id = a.id) as settled_rows,
            (select (w.reserved_micros + w.settled_micros)::text from public.budget_windows w where w.agent_id = a.id) as counter_committed,
            (select coalesce(sum(t.cost_micros), 0)::text from public.tasks t where t.agent_id = a.id) as task_cost,
            (select coalesce(sum(actual_micros), 0)::text from public.budget_reservations r where r.agent_id = a.id and status = 'settled') as settled
       from public.agents a where a.id = $1`,
    [agentId],
  );
  const cap = Number(row!.cap);
  const committed = Number(row!.ledger_committed);
  return {
    cap,
    committed,
    overspend: Math.max(0, committed - cap),
    open: Number(row!.open),
    settledRows: Number(row!.settled_rows),
    countersMatch: row!.counter_committed === row!.ledger_committed,
    taskCostMatches: row!.task_cost === row!.settled,
  };
}

/** Runs a phase and reports its pair rate and the CPU each process spent per pair, and how busy the cores were. */
async function measured(stackPid: number, phase: () => Promise<RunResult>) {
  const c0 = cpuSnapshot(stackPid);
  const run = await phase();
  const c1 = cpuSnapshot(stackPid);
  const per = (k: keyof typeof c0) => ((c1[k] - c0[k]) / Math.max(run.pairs, 1)).toFixed(2);
  const busy = Object.keys(c0).reduce((sum, k) => sum + (c1[k as keyof typeof c0] - c0[k as keyof typeof c0]), 0) / run.wallMs;
  return {
    run,
    rate: run.pairs / (run.wallMs / 1000),
    cpu:
      `CPU ms/pair: Postgres ${per("postgres")}, PostgREST ${per("postgrest")}, proxy ${per("proxy")}, client ${per("bench")}` +
      ` (${(busy * 100).toFixed(0)}% of ${cpus().length * 100}% busy)`,
  };
}

async function main(): Promise<void> {
  const dataDir = await mkdtemp(join(tmpdir(), "nightshift-bench-budget-"));
  let stack: ChildProcess | undefined;
  try {
    const started = await startStackProcess(dataDir);
    stack = started.child;
    const { info } = started;
    const db = adminClient(info);

    // Warm-up on an agent with room to spare: JIT, HTTP keep-alive, PostgREST's pool and schema cache. Its rate
    // sizes the measured agent's cap so that it runs out about 60% into the run.
    const warmTasks = await createAgent(info.databaseUrl, "bench-warmup", 1e15);
    const warm = await runCallers(1.5, viaRpc(db, () => "bench-warmup"), warmTasks);
    const warmRate = warm.pairs / (warm.wallMs / 1000);
    const meanActual = 4_500;
    const cap = Math.max(RESERVE * CONCURRENCY, Math.round(warmRate * SECONDS * 0.6) * meanActual);

    // The measured run, on the rpc path the app uses.
    const tasks = await createAgent(info.databaseUrl, "bench", cap);
    const cpu0 = cpuSnapshot(stack.pid!);
    const run = await runCallers(SECONDS, viaRpc(db, () => "bench"), tasks);
    const cpu1 = cpuSnapshot(stack.pid!);
    const check = await checkLedger(info.databaseUrl, "bench");

    // What bounds it: the same pairs with one agent per caller (no shared budget row), and over direct Postgres
    // connections, one agent and one per caller.
    const spread = await createAgentPerCaller(info.databaseUrl, "bench-rpc");
    const rpcSpread = await measured(stack.pid!, () => runCallers(SQL_SECONDS, viaRpc(db, spread.agentFor), spread.tasks));
    const pool = new pg.Pool({ connectionString: info.databaseUrl, max: CONCURRENCY });
    pool.on("error", () => {});
    const sqlTasks = await createAgent(info.databaseUrl, "bench-sql", 1e15);
    const sqlOne = await measured(stack.pid!, () => runCallers(SQL_SECONDS, viaSql(pool, () => "bench-sql"), sqlTasks));
    const sqlSpreadAgents = await createAgentPerCaller(info.databaseUrl, "bench-sqls");
    const sqlSpread = await measured(stack.pid!, () =>
      runCallers(SQL_SECONDS, viaSql(pool, sqlSpreadAgents.agentFor), sqlSpreadAgents.tasks),
    );
    await pool.end();
    const commitMs = await commitLatencyMs(info.databaseUrl);

    const rate = run.pairs / (run.pairsSpanMs / 1000);
    const rpcs = 2 * run.pairs + run.refused;
    const cpuPerRpc = (k: keyof ReturnType<typeof cpuSnapshot>) => ((cpu1[k] - cpu0[k]) / rpcs).toFixed(2);
    const cpuShare = (k: keyof ReturnType<typeof cpuSnapshot>) => `${(((cpu1[k] - cpu0[k]) / run.wallMs) * 100).toFixed(0)}%`;

    console.log(`\nBudget ledger benchmark — ${new Date().toISOString()}`);
    console.log(`machine: ${cpus().length} cores (${cpus()[0]?.model ?? "unknown cpu"}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM, node ${process.version}`);
    console.log(
      `workload: ${CONCURRENCY} concurrent callers, one agent, reserve ${RESERVE} µ$ + settle 2,000–6,999 µ$ per pair, ` +
        `supabase.rpc → /rest/v1 proxy → PostgREST 12 → Postgres 18 (fsync on)`,
    );
    console.log("");
    console.log(`supabase.rpc, ${SECONDS} s (cap ${cap.toLocaleString()} µ$, sized to run out mid-run; warm-up ${warmRate.toFixed(0)} pairs/s):`);
    console.log(`  pairs:            ${run.pairs} in ${(run.pairsSpanMs / 1000).toFixed(2)} s  →  ${rate.toFixed(0)} pairs/s   (goal ≥ 1,000)`);
    console.log(`  pair latency:     p50 ${pct(run.pairMs, 50).toFixed(1)} ms, p99 ${pct(run.pairMs, 99).toFixed(1)} ms`);
    console.log(
      `  refused:          ${run.refused} reservations (p50 ${pct(run.refusalMs, 50).toFixed(1)} ms)` +
        (run.refused === 0 ? "  — the cap did not run out: raise BENCH_SECONDS" : ""),
    );
    console.log(`  errors:           ${run.errors.length}${run.errors.length ? ` (${run.errors.slice(0, 3).join("; ")})` : ""}`);
    console.log(
      `  overspend:        ${check.overspend} µ$  (committed ${check.committed.toLocaleString()} of cap ${check.cap.toLocaleString()}; ` +
        `${check.open} open reservations; counters = ledger: ${check.countersMatch}; tasks.cost_micros = settled: ${check.taskCostMatches})`,
    );
    console.log(
      `  CPU per rpc:      Postgres ${cpuPerRpc("postgres")} ms, PostgREST ${cpuPerRpc("postgrest")} ms, ` +
        `/rest/v1 proxy ${cpuPerRpc("proxy")} ms, supabase-js callers ${cpuPerRpc("bench")} ms (${rpcs} rpcs incl. refusals)`,
    );
    console.log(
      `  CPU busy:         Postgres ${cpuShare("postgres")}, PostgREST ${cpuShare("postgrest")}, proxy ${cpuShare("proxy")}, ` +
        `callers ${cpuShare("bench")} (of ${cpus().length * 100}%)`,
    );
    console.log("what bounds it (each " + SQL_SECONDS + " s, budget never runs out):");
    for (const [label, m] of [
      ["supabase.rpc, one agent per caller (no shared row lock)", rpcSpread],
      ["direct SQL, one agent", sqlOne],
      ["direct SQL, one agent per caller", sqlSpread],
    ] as const) {
      console.log(`  ${label}: ${m.rate.toFixed(0)} pairs/s, p50 ${pct(m.run.pairMs, 50).toFixed(1)} ms, p99 ${pct(m.run.pairMs, 99).toFixed(1)} ms; ${m.cpu}`);
    }
    console.log(`  one connection, durable single-row update commits: ${commitMs.toFixed(2)} ms each (${(1000 / commitMs).toFixed(0)}/s)`);
    const failed =
      check.overspend > 0 ||
      !check.countersMatch ||
      !check.taskCostMatches ||
      check.open > 0 ||
      [run, rpcSpread.run, sqlOne.run, sqlSpread.run].some((r) => r.errors.length > 0);
    if (failed) {
      console.error("FAILED: the ledger is inconsistent or calls failed");
      process.exitCode = 1;
    }
  } finally {
    if (stack) {
      const exited = new Promise((r) => stack!.once("exit", r));
      stack.stdin!.end();
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
      if (stack.exitCode === null) stack.kill("SIGKILL");
    }
    await rm(dataDir, { recursive: true, force: true });
  }
}

if (process.argv[2] === "--serve-stack") {
  serveStack(process.argv[3]!).catch((e) => {
    console.error(e);
    process.exit(1);
  });
} else {
  main().then(
    () => process.exit(process.exitCode ?? 0),
    (err) => {
      console.error(err);
      process.exit(1);
    },
  );
}
