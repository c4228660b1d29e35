// npm run bench:console — the console's first load with 10,000 tasks in the database.
//
//   1. one production build into .next-bench (`--no-build` reuses the one that is there);
//   2. a temporary data stack (embedded Postgres + PostgREST) in this process, seeded straight through SQL with
//      10,000 tasks spread over the last 10 days (`--spread-hours`), with their steps, budget ledger and approvals
//      (bench/lib/console-seed.ts), then ANALYZE; `next start` as a child with the console configured;
//   3. a session cookie minted with lib/console/session.ts (what the sign-in form sets), checked to open `/`;
//   4. GET `/`, `/review` and `/tasks/<id>` over one keep-alive connection: the very first request to each page
//      after the server started (cold: route modules load, pools fill), then 20 each (warm). No page sends a
//      Server-Timing header, so the server time is measured at the client on localhost: time to the first byte
//      (headers) and to the last byte (the whole HTML; the pages render everything before they answer);
//   5. diagnostics: the data reads each page makes (lib/console/queries.ts, the same PostgREST), timed alone, so a
//      slow page can be traced to the read that bounds it; `/login` (no data) as the render-only baseline.
// Goal (issue 5): < 500 ms server time. Prints a summary and stops everything it started.
//
//   npx tsx bench/console.ts [--no-build] [--tasks 10000] [--spread-hours 240] [--runtime-first]
//   --spread-hours 16 puts every task in the morning summary's window (the worst case for /review).
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { consoleConfig } from "../lib/console/config";
import {
  agentSpendToday,
  approvalHistory,
  dashboardTasks,
  enabledAgents,
  morningSummary,
  reviewQueue,
  taskDetail,
} from "../lib/console/queries";
import { newSession, SESSION_COOKIE, signSession } from "../lib/console/session";
import { recordSession } from "../lib/console/session-store";
import { startDataStack, type DataStack } from "../local/data-stack";
import { seedConsoleHistory, type SeedSummary } from "./lib/console-seed";
import {
  adminClient,
  buildUnlessAsked,
  cleanupStack,
  DIST_DIR,
  keepAliveClient,
  log,
  machineLine,
  startNext,
  type NextServer,
  type Timed,
} from "./lib/next-app";
import { fmtMs, summarize } from "./lib/stats";
import { numFlag } from "./lib/args";

const argv = process.argv.slice(2);
const args = new Set(argv);
const num = (flag: string, dflt: number) => numFlag(argv, flag, dflt);
const TASKS = Math.round(num("--tasks", 10_000));
const SPREAD_HOURS = num("--spread-hours", 240);
const WARM = 20;
const GOAL_MS = 500;

const PASSWORD = "bench operator password";
const SECRET = "bench-console-session-secret-0123456789abcdef";

interface PageFigures {
  path: string;
  label: string;
  cold: Timed;
  warm: Timed[];
  serverTiming: string | null;
}

interface QueryFigures {
  name: string;
  page: string;
  ms: number[];
}

async function main(): Promise<number> {
  const started = Date.now();
  const cleanup = cleanupStack();
  let stack: DataStack, app: NextServer, sql: pg.Client, seed: SeedSummary, seedMs: number;

  try {
    buildUnlessAsked(args);
    const dataDir = await mkdtemp(join(tmpdir(), "nightshift-bench-console-"));
    cleanup.push(() => rm(dataDir, { recursive: true, force: true }));
    stack = await startDataStack({ dataDir, persistent: false });
    cleanup.push(() => stack.stop());
    sql = new pg.Client({ connectionString: stack.databaseUrl });
    sql.on("error", () => {});
    await sql.connect();
    const sqlClient = sql;
    cleanup.push(() => sqlClient.end());

    const t0 = Date.now();
    seed = await seedConsoleHistory(sql, { tasks: TASKS, spreadHours: SPREAD_HOURS });
    seedMs = Date.now() - t0;
    log(
      `seeded ${seed.tasks} tasks, ${seed.steps} steps, ${seed.reservations} reservations, ${seed.approvals} approvals ` +
        `(${seed.pendingApprovals} pending) in ${(seedMs / 1000).toFixed(1)} s`,
    );

    app = await startNext({
      SUPABASE_URL: stack.supabaseUrl,
      SUPABASE_SECRET_KEY: stack.secretKey,
      // The pages never call the model or the engine; these only satisfy the configuration.
      ANTHROPIC_BASE_URL: "http://127.0.0.1:9",
      ANTHROPIC_API_KEY: "",
      INNGEST_DEV: "http://127.0.0.1:9",
      NIGHTSHIFT_OPERATOR_PASSWORD: PASSWORD,
      NIGHTSHIFT_SESSION_SECRET: SECRET,
    });
    const appServer = app;
    cleanup.push(() => appServer.stop());
    log(`stack up in ${((Date.now() - started) / 1000).toFixed(1)} s: app ${app.url}`);
  } catch (e) {
    console.error(`[bench] setup failed: ${e instanceof Error ? e.message : String(e)}`);
    await cleanup.run();
    return 1;
  }

  const http = keepAliveClient();
  try {
    // The session the sign-in form would set: same config, same signing.
    const config = consoleConfig({ NIGHTSHIFT_OPERATOR_PASSWORD: PASSWORD, NIGHTSHIFT_SESSION_SECRET: SECRET });
    const session = newSession(config);
    // The sign-in form also records the session server side (lib/console/session-store.ts); a cookie alone is refused.
    await recordSession(adminClient(stack.supabaseUrl, stack.secretKey), session);
    const cookie = `${SESSION_COOKIE}=${signSession(config, session)}`;

    const pages = [
      { path: "/", label: "/ (dashboard)", expect: "<h1>Tasks</h1>" },
      { path: "/review", label: "/review", expect: "Morning review" },
      { path: `/tasks/${seed.detailTaskId}`, label: `/tasks/<id> (${seed.detailSteps} steps)`, expect: 'data-testid="result"' },
    ];
    const figures: PageFigures[] = [];
    // Cold: the first request each page gets after the server started. With --runtime-first, /login (no data) is
    // requested before them, so their cold figures leave out loading Next's and React's shared server code.
    const cold = new Map<string, Timed>();
    let runtimeFirst: Timed | null = null;
    if (args.has("--runtime-first")) runtimeFirst = await http.get(`${app.url}/login`);
    for (const p of pages) {
      const r = await http.get(`${app.url}${p.path}`, { cookie });
      check(r, p.path, p.expect);
      cold.set(p.path, r);
    }
    for (const p of pages) {
      const warm: Timed[] = [];
      for (let i = 0; i < WARM; i++) {
        const r = await http.get(`${app.url}${p.path}`, { cookie });
        check(r, p.path, p.expect);
        warm.push(r);
      }
      const st = warm[warm.length - 1]!.headers["server-timing"];
      figures.push({ path: p.path, label: p.label, cold: cold.get(p.path)!, warm, serverTiming: st ? String(st) : null });
    }
    // Baseline: a page that renders without reading anything.
    const login: Timed[] = [];
    for (let i = 0; i < WARM + 1; i++) login.push(await http.get(`${app.url}/login`));
    if (login[0]!.status !== 200) throw new Error(`GET /login answered ${login[0]!.status}`);

    // Diagnostics: each page's reads, alone, through the same PostgREST.
    const db = adminClient(stack.supabaseUrl, stack.secretKey);
    const reads: { name: string; page: string; run: () => Promise<unknown> }[] = [
      { name: "dashboardTasks (25 newest)", page: "/", run: () => dashboardTasks(session, db, {}) },
      { name: "agentSpendToday", page: "/", run: () => agentSpendToday(session, db) },
      { name: "enabledAgents", page: "/", run: () => enabledAgents(session, db) },
      { name: "morningSummary", page: "/review", run: () => morningSummary(session, db) },
      { name: "reviewQueue (≤ 100 pending)", page: "/review", run: () => reviewQueue(session, db) },
      { name: "taskDetail", page: "/tasks/<id>", run: () => taskDetail(session, db, seed.detailTaskId) },
      { name: "approvalHistory", page: "/tasks/<id>", run: () => approvalHistory(session, db, seed.detailTaskId) },
    ];
    const queries: QueryFigures[] = [];
    for (const q of reads) {
      await q.run(); // warm the client's connection
      const ms: number[] = [];
      for (let i = 0; i < WARM; i++) {
        const t = performance.now();
        await q.run();
        ms.push(performance.now() - t);
      }
      queries.push({ name: q.name, page: q.page, ms });
    }

    report(seed, seedMs, figures, login, queries, runtimeFirst);
    log(`done in ${((Date.now() - started) / 1000).toFixed(0)} s`);
    return 0;
  } catch (e) {
    console.error(`[bench] run failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n${app.tail()}`);
    return 1;
  } finally {
    http.close();
    await cleanup.run();
  }
}

function check(r: Timed, path: string, expect: string): void {
  if (r.status !== 200) throw new Error(`GET ${path} answered ${r.status} (location: ${String(r.headers.location ?? "")})`);
  if (!r.body.includes(expect)) throw new Error(`GET ${path}: the page does not contain ${JSON.stringify(expect)}`);
}

function report(
  seed: SeedSummary,
  seedMs: number,
  pages: PageFigures[],
  login: Timed[],
  queries: QueryFigures[],
  runtimeFirst: Timed | null,
): void {
  const line = "─".repeat(110);
  console.log(`\n${line}\nConsole first load with ${seed.tasks.toLocaleString("en")} tasks — ${new Date().toISOString()}`);
  console.log(machineLine());
  console.log(`app: next start (${DIST_DIR}); Supabase /rest/v1 proxy in the bench process; embedded Postgres + PostgREST`);
  console.log(
    `data: ${seed.tasks} tasks over the last ${SPREAD_HOURS} h (${seed.overnight} in the last 16 h), ${seed.steps} steps, ` +
      `${seed.reservations} budget reservations in ${seed.windows} agent-days, ${seed.approvals} approvals (${seed.pendingApprovals} pending); ` +
      `seeded by SQL in ${(seedMs / 1000).toFixed(1)} s, then ANALYZE`,
  );
  console.log(`  by status: ${Object.entries(seed.byStatus).map(([k, v]) => `${k} ${v}`).join(", ")}`);
  console.log(`  by agent:  ${Object.entries(seed.byAgent).map(([k, v]) => `${k} ${v}`).join(", ")}`);
  console.log(line);
  console.log(`\nServer time per page, measured at the client over one keep-alive connection on 127.0.0.1 (ms):`);
  console.log(`  TTFB = request sent → response headers; full = → last byte of the HTML. Warm: ${WARM} requests each, one at a time.`);
  console.log(
    `  ${"page".padEnd(30)} ${"cold TTFB".padStart(9)} ${"cold full".padStart(9)} │ ${"warm TTFB p50".padStart(13)} ${"p99".padStart(7)} │ ` +
      `${"warm full p50".padStart(13)} ${"p99".padStart(7)} ${"max".padStart(7)} │ ${"HTML".padStart(7)}`,
  );
  const row = (label: string, cold: Timed | null, warm: Timed[]) => {
    const tt = summarize(warm.map((w) => w.ttfbMs));
    const full = summarize(warm.map((w) => w.totalMs));
    console.log(
      `  ${label.padEnd(30)} ${(cold ? fmtMs(cold.ttfbMs) : "–").padStart(9)} ${(cold ? fmtMs(cold.totalMs) : "–").padStart(9)} │ ` +
        `${fmtMs(tt.p50).padStart(13)} ${fmtMs(tt.p99).padStart(7)} │ ${fmtMs(full.p50).padStart(13)} ${fmtMs(full.p99).padStart(7)} ` +
        `${fmtMs(full.max).padStart(7)} │ ${`${(warm[0]!.bytes / 1024).toFixed(0)} KB`.padStart(7)}`,
    );
  };
  if (runtimeFirst) console.log(`  (--runtime-first: the server's first request, GET /login, took ${fmtMs(runtimeFirst.totalMs)} ms before the cold pages)`);
  for (const p of pages) row(p.label, p.cold, p.warm);
  row("/login (no data: baseline)", login[0]!, login.slice(1));
  const st = pages.filter((p) => p.serverTiming);
  console.log(st.length ? `  Server-Timing: ${st.map((p) => `${p.path}: ${p.serverTiming}`).join("; ")}` : "  Server-Timing: not sent by any page");

  console.log(`\nThe pages' reads, each alone (lib/console/queries.ts through PostgREST; ${WARM} calls each, ms):`);
  for (const q of queries) {
    const s = summarize(q.ms);
    console.log(`  ${q.page.padEnd(12)} ${q.name.padEnd(30)} p50 ${fmtMs(s.p50).padStart(7)}  p99 ${fmtMs(s.p99).padStart(7)}  max ${fmtMs(s.max).padStart(7)}`);
  }

  const worst = Math.max(...pages.map((p) => Math.max(p.cold.totalMs, summarize(p.warm.map((w) => w.totalMs)).p99)));
  const worstWarm = Math.max(...pages.map((p) => summarize(p.warm.map((w) => w.totalMs)).p99));
  console.log(
    `\nGoal < ${GOAL_MS} ms server time: warm p99 worst page ${fmtMs(worstWarm)} ms ${worstWarm < GOAL_MS ? "MET" : "MISSED"}; ` +
      `including the cold first request ${fmtMs(worst)} ms ${worst < GOAL_MS ? "MET" : "MISSED"}`,
  );
  console.log(line);
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
