// npm run bench:crash-sweep — is the ledger honest when the app dies mid-call? (issue 13)
//
// The real parts: the embedded Supabase stack, the local Inngest engine (real clock) and the offline Claude double in
// this process; the app's Inngest functions served by the real SDK in a CHILD process, which this script SIGKILLs
// while model calls are in flight (an open budget reservation = a call reserved and not yet settled), then starts
// again on the same port. The engine retries the step; the turn writes the lost call off as an estimate
// (write_off_lost_calls) and calls again. Seeded: the same BENCH_SEED gives the same workload and kill times.
//
// At the end, what the provider answered (the double's record of every 200, priced with lib/llm/prices.ts — the
// double finishes and records a call whose client died, as the API bills it) against the ledger (tasks.cost_micros =
// settled real + estimated). A lost call is charged as the issue specifies: counted input + the expected output
// (write_off_lost_calls), never below the input cost. Checked: ledger − billed never exceeds the estimates (no
// settled call counted twice); printed: the total and per-task under/over-count, and what the session-3 rule
// (charge the reservation, the worst case) would have said on the same run.
//
//   npm run bench:crash-sweep                BENCH_TASKS=12 BENCH_KILLS=8 BENCH_SEED=7
//
// BENCH_KILL=engine: the local engine runs in a child process too (the CLI, its journal in the sweep's data
// directory) and it is the one SIGKILLed and restarted on the same port and database, while the app keeps serving;
// BENCH_KILL=both alternates. Then also checked: every task completes (an engine's crash costs no run an attempt
// and loses no acknowledged step), and no model answer the app read is charged twice.
import { spawn, type ChildProcess } from "node:child_process";
import { createServer } from "node:http";
import { mkdtemp, rm } from "node:fs/promises";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const TASKS = Number(process.env.BENCH_TASKS ?? 12);
const KILLS = Number(process.env.BENCH_KILLS ?? 8);
const SEED = Number(process.env.BENCH_SEED ?? 7);
const TIMEOUT_MS = Number(process.env.BENCH_TIMEOUT_S ?? 600) * 1000;
const KILL = (process.env.BENCH_KILL ?? "app") as "app" | "engine" | "both";
if (!["app", "engine", "both"].includes(KILL)) throw new Error("BENCH_KILL must be app, engine or both");

// ---------------------------------------------------------------------------------------------------------------
// Child: the app (the Inngest serve route of every function), until it is killed.
async function serveApp(port: number) {
  const { inngest } = await import("../inngest/client");
  const { functions } = await import("../inngest/index");
  const { serve } = await import("inngest/node");
  const server = createServer(serve({ client: inngest, functions }));
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((r) => server.listen(port, "127.0.0.1", () => r()));
  process.stdout.write("READY\n");
}

// ---------------------------------------------------------------------------------------------------------------
// Parent: the sweep.
async function main() {
  const dataDir = await mkdtemp(join(tmpdir(), "ns-crash-"));
  const { startDataStack } = await import("../local/data-stack");
  const { startClaudeDouble, scenarioMarker } = await import("../local/claude/server");
  const { startEngine } = await import("../local/engine/index");
  const { freePort } = await import("../local/ports");
  const { costMicros } = await import("../lib/llm/prices");
  const pg = (await import("pg")).default;

  const stack = await startDataStack({ dataDir, persistent: false });
  const double = await startClaudeDouble({ maxCallBodies: 0 });
  // The engine: in this process, or (BENCH_KILL=engine|both) the CLI in a child process, killed and restarted.
  const engineInProc = KILL === "app" ? await startEngine({ databaseUrl: stack.databaseUrl, port: 0, retryBackoff: () => 300 }) : null;
  const enginePort = engineInProc ? engineInProc.port : await freePort();
  const engineUrl = `http://127.0.0.1:${enginePort}`;
  const engineLog: string[] = [];
  let engineProc: ChildProcess | null = null;
  const startEngineProc = async () => {
    const args = ["--import", "tsx", "local/engine/main.ts", "--database-url", stack.databaseUrl, "--port", String(enginePort), "--journal-dir", join(dataDir, "engine-journal")];
    const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"] });
    engineProc = child;
    await new Promise<void>((resolve, reject) => {
      let buf = "";
      const onData = (d: Buffer) => {
        buf += d;
        for (const l of d.toString().split("\n")) if (/ENGINE ERROR|journal|error/i.test(l)) engineLog.push(l);
        if (buf.includes('"ready":true')) resolve();
      };
      child.stdout!.on("data", onData);
      child.stderr!.on("data", onData);
      child.on("exit", (code) => reject(new Error(`the engine exited (${code}) before it was ready: ${buf.slice(-2000)}`)));
    });
  };
  if (!engineInProc) await startEngineProc();
  const appPort = await freePort();
  const appUrl = `http://127.0.0.1:${appPort}/api/inngest`;
  const env = {
    ...process.env,
    SUPABASE_URL: stack.supabaseUrl,
    SUPABASE_SECRET_KEY: stack.secretKey,
    ANTHROPIC_BASE_URL: double.url,
    INNGEST_DEV: engineUrl,
    NIGHTSHIFT_DIGEST_TIME: "off",
    NEXT_TELEMETRY_DISABLED: "1",
    CRASH_SWEEP_APP_PORT: String(appPort),
  };
  let app: ChildProcess | null = null;
  const startApp = async () => {
    const child = spawn(process.execPath, ["--conditions=react-server", "--import", "tsx", fileURLToPath(import.meta.url)], {
      env,
      stdio: ["ignore", "pipe", "ignore"],
    });
    app = child;
    await new Promise<void>((resolve, reject) => {
      let buf = "";
      child.stdout!.on("data", (d) => {
        buf += d;
        if (buf.includes("READY")) resolve();
      });
      child.on("exit", (code) => reject(new Error(`the app exited (${code}) before it was ready`)));
    });
  };
  await startApp();
  // What Engine.sync does: the SDK's serve handler answers a PUT by registering with the engine.
  const synced = await fetch(appUrl, { method: "PUT" });
  if (!synced.ok) throw new Error(`sync failed (HTTP ${synced.status}): ${await synced.text()}`);

  const sql = new pg.Pool({ connectionString: stack.databaseUrl, max: 2 });
  sql.on("error", () => {});
  await sql.query(`update public.agents set concurrency = 8, budget_timezone = 'UTC' where id = 'research'`);

  // The workload: research tasks of 2–5 turns (continuations of a max_tokens cut, then an answer), output 100–900
  // tokens a turn, each call 0.6–1.6 s at the double so that most of the time some call is in flight.
  let seed = SEED;
  const rnd = () => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
  const { submitTask } = await import("../lib/tasks/submit");
  const { createAdminClient } = await import("../lib/db/admin");
  const db = createAdminClient({ url: stack.supabaseUrl, secretKey: stack.secretKey });
  const scenarios = new Map<string, string>(); // task id -> scenario
  for (let i = 0; i < TASKS; i++) {
    const scenario = `crash-${SEED}-${i}`;
    const turns = 2 + Math.floor(rnd() * 4);
    // Each turn is scripted twice: a retry after a kill asks the double again, and a cut answer is continued.
    const steps = Array.from({ length: turns * 3 }, (_, t) => ({
      text: `Part ${t} of the answer to question ${i}.`,
      ...(t < turns - 1 ? { stop_reason: "max_tokens" as const } : {}),
      latency_ms: 600 + Math.round(rnd() * 1000),
      usage: { output_tokens: 100 + Math.round(rnd() * 800) },
    }));
    double.script(scenario, steps);
    const t = await submitTask(db, { agent: "research", prompt: `${scenarioMarker(scenario)} Question ${i}.` }, null, null);
    scenarios.set(t.taskId, scenario);
  }
  const started = Date.now();

  // Kill the app N times, each time while at least one call is in flight.
  const TERMINAL = ["completed", "failed", "stopped", "rejected", "cancelled"];
  const openTasks = async () =>
    Number((await sql.query(`select count(*) c from public.tasks where status::text <> all($1::text[])`, [TERMINAL])).rows[0].c);
  let kills = 0;
  let engineKills = 0;
  const openAtKills = new Set<string>(); // distinct reservations open when the app was killed
  while (kills < KILLS && (await openTasks()) > 0 && Date.now() - started < TIMEOUT_MS) {
    await new Promise((r) => setTimeout(r, 500 + rnd() * 2500));
    const open = (await sql.query(`select id from public.budget_reservations where status = 'reserved'`)).rows.map((r) => r.id as string);
    if (open.length === 0) continue;
    const killEngine = KILL === "engine" || (KILL === "both" && kills % 2 === 1);
    const victim = (killEngine ? engineProc : app) as ChildProcess | null;
    victim?.kill("SIGKILL");
    await new Promise((r) => victim?.once("exit", r));
    kills += 1;
    if (killEngine) engineKills += 1;
    for (const id of open) openAtKills.add(id);
    await new Promise((r) => setTimeout(r, 200));
    if (killEngine) await startEngineProc();
    else await startApp();
  }
  while ((await openTasks()) > 0 && Date.now() - started < TIMEOUT_MS) await new Promise((r) => setTimeout(r, 500));
  const elapsed = (Date.now() - started) / 1000;

  // The provider's side: every 200 of a task's scenario, priced. The ledger's: the task's cost (settled + estimated).
  const { rows } = await sql.query(
    `select t.id, t.status::text, t.cost_micros::bigint c, t.estimated_cost_micros::bigint e,
            (select count(*) from public.budget_reservations r where r.task_id = t.id and r.status = 'settled' and r.estimated) lost,
            (select count(*) from public.budget_reservations r where r.task_id = t.id and r.status = 'settled' and not r.estimated) real_calls,
            (select coalesce(sum(r.reserved_micros), 0) from public.budget_reservations r
               where r.task_id = t.id and r.status = 'settled' and r.estimated)::bigint lost_reserved
       from public.tasks t`,
  );
  let billed = 0, ledger = 0, estimated = 0, lost = 0, under = 0, worstUnder = 0, maxOverVsEstimate = -Infinity;
  // The same run priced with session 3's rule (a lost call charged at its reservation, the worst case): what the
  // ledger would have said.
  let worstLedger = 0, worstUnderTasks = 0, providerCalls = 0, realCalls = 0, maxOver = 0;
  const perTask: string[] = [];
  const statuses: Record<string, number> = {};
  for (const r of rows) {
    const scenario = scenarios.get(r.id)!;
    const paid = double
      .calls({ scenario, kind: "messages" })
      .filter((c) => c.status === 200 && c.usage)
      .reduce((s, c) => s + costMicros(c.model!, c.usage!), 0);
    const l = Number(r.c);
    const okCalls = double.calls({ scenario, kind: "messages" }).filter((c) => c.status === 200).length;
    providerCalls += okCalls;
    realCalls += Number(r.real_calls);
    const lw = l - Number(r.e) + Number(r.lost_reserved);
    worstLedger += lw;
    if (lw < paid) worstUnderTasks++;
    maxOver = Math.max(maxOver, l - paid);
    perTask.push(`  ${String(r.id).slice(0, 8)} ${String(r.status).padEnd(9)} lost ${String(r.lost).padStart(2)}  billed ${String(paid).padStart(7)}  ledger ${String(l).padStart(7)} (est ${String(r.e).padStart(6)})  ${l - paid >= 0 ? "+" : ""}${l - paid} µ$ (${((100 * (l - paid)) / Math.max(1, paid)).toFixed(1)} %)`);
    billed += paid;
    ledger += l;
    estimated += Number(r.e);
    lost += Number(r.lost);
    statuses[r.status] = (statuses[r.status] ?? 0) + 1;
    if (l < paid) (under++, (worstUnder = Math.min(worstUnder, l - paid)));
    maxOverVsEstimate = Math.max(maxOverVsEstimate, l - paid - Number(r.e));
  }
  const pct = (x: number) => `${((100 * x) / Math.max(1, billed)).toFixed(2)} %`;
  console.log(`bench:crash-sweep — ${TASKS} research tasks, ${kills} kills (${engineKills} of the engine, ${kills - engineKills} of the app; seed ${SEED}), ${cpus().length} CPUs, ${elapsed.toFixed(1)} s`);
  console.log(`tasks ended                         ${JSON.stringify(statuses)}`);
  console.log(`open reservations at the kills     ${openAtKills.size} (distinct; each a call reserved and not settled)`);
  console.log(`lost calls written off (estimated) ${lost}; answers the provider gave that the app never read: ${providerCalls - realCalls}`);
  console.log(`provider billed (double, priced)   ${billed} µ$`);
  console.log(`ledger (settled + estimated)       ${ledger} µ$  of which estimated ${estimated} µ$`);
  console.log(`ledger − billed                    ${ledger - billed} µ$ (${pct(ledger - billed)})`);
  console.log(`per task (billed vs ledger):\n${perTask.join("\n")}`);
  console.log(`tasks under-counted                ${under} (worst ${worstUnder} µ$); tasks over-counted: worst +${maxOver} µ$`);
  console.log(`over-count beyond the estimates    ${Math.max(0, maxOverVsEstimate)} µ$ (max per task; 0 = ledger − billed bounded by the estimates)`);
  console.log(`session-3 rule (charge the reservation) on this run: ledger − billed ${worstLedger - billed} µ$ (${pct(worstLedger - billed)}); tasks under-counted ${worstUnderTasks}`);
  console.log(
    `REPORT ${JSON.stringify({ tasks: TASKS, kills, seed: SEED, lost_calls: lost, billed_micros: billed, ledger_micros: ledger, estimated_micros: estimated, under_counted_tasks: under, worst_under_micros: worstUnder, unread_answers: providerCalls - realCalls, worst_over_micros: maxOver, over_beyond_estimates_micros: Math.max(0, maxOverVsEstimate), reservation_rule_ledger_micros: worstLedger, elapsed_s: elapsed, statuses })}`,
  );

  const notCompleted = rows.filter((r) => r.status !== "completed").length;
  if (KILL !== "app") {
    console.log(`tasks not completed                ${notCompleted} (an engine crash must cost no task its completion)`);
    if (engineLog.length) console.log(`engine log lines about the journal / errors:\n  ${engineLog.slice(-30).join("\n  ")}`);
  }

  (app as ChildProcess | null)?.kill("SIGKILL");
  await sql.end();
  await engineInProc?.stop();
  const ep = engineProc as ChildProcess | null;
  if (ep && ep.exitCode === null && ep.signalCode === null) {
    const exited = new Promise((r) => ep.once("exit", r));
    ep.kill("SIGTERM");
    await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000))]);
  }
  await double.stop();
  await stack.stop();
  await rm(dataDir, { recursive: true, force: true });
  // The bound that must hold: the ledger never exceeds the bill by more than the estimates charged.
  process.exit(maxOverVsEstimate <= 0 && (KILL === "app" || notCompleted === 0) ? 0 : 1);
}

if (process.env.CRASH_SWEEP_APP_PORT) await serveApp(Number(process.env.CRASH_SWEEP_APP_PORT));
else await main();
