// npm run bench:scale — Nightshift after months of nights: every hot and user-facing query at size.
//
//   1. a temporary data stack (embedded Postgres + PostgREST) seeded straight through SQL with `--tasks` tasks over
//      `--days` days across `--agents` agents and everything around them (bench/lib/scale-seed.ts), then ANALYZE;
//   2. each probe (the SQL a hot path runs: an RPC as the app calls it, or the query PostgREST builds for a list or a
//      page read) run once under auto_explain (ANALYZE, BUFFERS, nested statements: the plans of the statements
//      inside a plpgsql function too), and then `--runs` times for its latency over one connection. Writes run inside
//      a transaction that is rolled back, so every run sees the same data. A plan is flagged when it reads a big
//      table sequentially (> 10,000 rows), sorts more than 1,000 rows, or reads and filters out more than 1,000 rows
//      through an index: at size, each grows with the table;
//   3. "before": the same probes with the indexes of the scale migration dropped (20261206140000_scale_indexes.sql)
//      and the lists' old keyset filter; "after": the migration re-applied and the new filter. Same data, same
//      connection, back to back;
//   4. the real paths through PostgREST (lib/ functions as the routes and pages call them), timed after.
// Prints a table per phase and the load average. No thresholds: it prints what it finds.
//
//   npx tsx --conditions=react-server bench/scale.ts [--tasks 200000] [--days 60] [--agents 20] [--runs 30] [--after-only]
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { startDataStack, type DataStack } from "../local/data-stack";
import { seedScale, type ScaleSeed } from "./lib/scale-seed";
import { adminClient, log, machineLine, root } from "./lib/next-app";
import { fmtMs, summarize } from "./lib/stats";
import { listTasks, getTask } from "../lib/tasks/service";
import { listApprovals, listPendingApprovals } from "../lib/approvals";
import { listDeadLetters } from "../lib/dead-letters";
import { agentSpendToday, morningSummary, reviewQueue, taskDetail } from "../lib/console/queries";
import { spendHistory } from "../lib/console/spend";
import { encodeKeyset } from "../lib/db/keyset";
import { PRUNE_EVENTS_SQL, PRUNE_RUNS_SQL } from "../local/engine/pruning";
import { numFlag } from "./lib/args";

const argv = process.argv.slice(2);
const num = (flag: string, dflt: number) => numFlag(argv, flag, dflt);
const TASKS = Math.round(num("--tasks", 200_000));
const DAYS = num("--days", 60);
const AGENTS = Math.round(num("--agents", 20));
const RUNS = Math.round(num("--runs", 30));
const AFTER_ONLY = argv.includes("--after-only");
const SCALE_MIGRATION = join(root, "supabase/migrations/20261206140000_scale_indexes.sql");

const BIG_TABLE_ROWS = 10_000;
const BIG_SORT_ROWS = 1_000;

interface Probe {
  name: string;
  /** The SQL and its parameters; `before` when the old code sent something else. */
  sql: (s: Ctx) => { text: string; values?: unknown[] };
  before?: (s: Ctx) => { text: string; values?: unknown[] };
  /** Run in a transaction rolled back after each run (writes). */
  write?: boolean;
}

interface Ctx {
  seed: ScaleSeed;
  /** A cursor 5,000 tasks deep into the newest-first list (page 200 of 25). */
  deepTask: { c: string; i: string };
  deepApproval: { c: string; i: string };
  today: string;
  agent: string;
  running: { id: string; agent: string };
  queued: { id: string; agent: string };
  reserved: { task_id: string; step_id: string };
}

interface Figure {
  name: string;
  rows: number;
  p50: number;
  p99: number;
  buffers: number;
  verdict: string;
}

const olderThanSql = (col: string, n: number) => `(${col} < $${n} or (${col} = $${n} and id < $${n + 1}))`;
// The keyset filter the lists send now (lib/db/keyset.ts): the same `or`, plus a plain bound an index can start from.
const olderThanBoundedSql = (col: string, n: number) => `${col} <= $${n} and ${olderThanSql(col, n)}`;

const TASK_COLS = `id, agent_id, status, status_reason, result, error, progress_done, progress_total, cost_micros, created_at, updated_at`;

const probes: Probe[] = [
  // --- the POST's one RPC and the money path -------------------------------------------------------------------
  {
    name: "submit_task (POST /api/tasks)",
    write: true,
    sql: (s) => ({
      text: `select * from public.submit_task($1, null, $2, 'scale probe', null, 0::smallint, 'now', false, null, $3, md5($3), null)`,
      values: [s.seed.apiKeyId, s.agent, `probe-${Math.random()}`],
    }),
  },
  {
    name: "submit_task replay (same Idempotency-Key)",
    write: true,
    sql: (s) => ({
      text: `select * from public.submit_task($1, null, $2, 'x', null, 0::smallint, 'now', false, null, 'idem-100000', md5('100000'), null)`,
      values: [s.seed.apiKeyId, s.agent],
    }),
  },
  {
    name: "reserve_budget",
    write: true,
    sql: (s) => ({
      text: `select * from public.reserve_budget($1, $2, 'turn-99', 'claude-sonnet-4-6', 70000)`,
      values: [s.running.agent, s.running.id],
    }),
  },
  {
    name: "settle_budget",
    write: true,
    sql: (s) => ({
      text: `select * from public.settle_budget($1, $2, 5000, 100, 100)`,
      values: [s.reserved.task_id, s.reserved.step_id],
    }),
  },
  {
    name: "record_task_step (each step of a run)",
    write: true,
    sql: (s) => ({
      text: `select public.record_task_step($1, 'turn-9', 'model', 'completed', '{}', 10, 10, 100)`,
      values: [s.running.id],
    }),
  },
  {
    name: "finish_task (a run's end)",
    write: true,
    sql: (s) => ({
      text: `select public.finish_task($1, 'completed', '{"text":"done"}', null, null)`,
      values: [s.running.id],
    }),
  },
  {
    name: "fail_task_dead_letter (a run's failure)",
    write: true,
    sql: (s) => ({
      text: `select * from public.fail_task_dead_letter($1, 'model_error', 'failed', '{"message":"x"}', 'failed', 3)`,
      values: [s.running.id],
    }),
  },
  {
    name: "claim_agent_slot",
    write: true,
    sql: (s) => ({
      text: `select * from public.claim_agent_slot($1, $2, 60)`,
      values: [s.queued.agent, s.queued.id],
    }),
  },
  {
    name: "spend_by_agent_day today (console /, agent page)",
    sql: (s) => ({ text: `select * from public.spend_by_agent_day(null, $1::date, $1::date)`, values: [s.today] }),
  },
  {
    name: "spend_by_agent_day one agent, 14 days",
    sql: (s) => ({ text: `select * from public.spend_by_agent_day($1, $2::date - 13, $2::date)`, values: [s.agent, s.today] }),
  },
  {
    name: "spend_by_model 14 days (GET /api/spend)",
    sql: (s) => ({ text: `select * from public.spend_by_model($1::date - 13, $1::date)`, values: [s.today] }),
  },
  {
    name: "spend_by_model one task (GET /api/spend?task_id=)",
    sql: (s) => ({ text: `select * from public.spend_by_model(null, null, null, $1)`, values: [s.seed.bigTaskId] }),
  },
  {
    name: "spend_by_task (GET /api/tasks/:id cost)",
    sql: (s) => ({ text: `select * from public.spend_by_task($1)`, values: [s.seed.bigTaskId] }),
  },
  {
    name: "settled_spend_since 16 h (/review summary)",
    sql: () => ({ text: `select public.settled_spend_since(now() - interval '16 hours')` }),
  },
  {
    name: "expected_output_tokens (pacing)",
    sql: (s) => ({ text: `select public.expected_output_tokens($1, 'claude-sonnet-4-6', 1024)`, values: [s.agent] }),
  },
  {
    name: "admission_output_tokens (pacing admission)",
    sql: (s) => ({ text: `select public.admission_output_tokens($1, 'claude-sonnet-4-6', 1024)`, values: [s.agent] }),
  },
  // --- approvals ----------------------------------------------------------------------------------------------
  {
    name: "decide_approval_announced",
    write: true,
    sql: (s) => ({
      text: `select * from public.decide_approval_announced($1, 'approve', null, 'bench', 'api')`,
      values: [s.seed.pendingApprovalId],
    }),
  },
  {
    name: "expire_approval (the 24 h auto-reject)",
    write: true,
    sql: (s) => ({ text: `select * from public.expire_approval($1, now() + interval '2 days')`, values: [s.seed.pendingApprovalId] }),
  },
  {
    name: "GET /api/approvals (newest 50)",
    sql: () => ({
      text: `select * from public.approvals where visible_at is not null order by requested_at desc, id desc limit 51`,
    }),
  },
  {
    name: "GET /api/approvals?status=approved",
    sql: () => ({
      text: `select * from public.approvals where visible_at is not null and status = 'approved' order by requested_at desc, id desc limit 51`,
    }),
  },
  {
    name: "GET /api/approvals cursor 5,000 rows deep",
    sql: (s) => ({
      text: `select * from public.approvals where visible_at is not null and ${olderThanBoundedSql("requested_at", 1)}
              order by requested_at desc, id desc limit 51`,
      values: [s.deepApproval.c, s.deepApproval.i],
    }),
    before: (s) => ({
      text: `select * from public.approvals where visible_at is not null and ${olderThanSql("requested_at", 1)}
              order by requested_at desc, id desc limit 51`,
      values: [s.deepApproval.c, s.deepApproval.i],
    }),
  },
  {
    name: "review queue (≤ 100 pending, oldest first)",
    sql: () => ({
      text: `select * from public.approvals where status = 'pending' and visible_at is not null order by requested_at, id limit 100`,
    }),
  },
  // --- tasks: the list API and the console's dashboard -------------------------------------------------------
  {
    name: "GET /api/tasks (newest 25)",
    sql: () => ({ text: `select ${TASK_COLS} from public.tasks order by created_at desc, id desc limit 26` }),
  },
  {
    name: "GET /api/tasks?status=failed",
    sql: () => ({ text: `select ${TASK_COLS} from public.tasks where status = 'failed' order by created_at desc, id desc limit 26` }),
  },
  {
    name: "GET /api/tasks?agent=…",
    sql: (s) => ({
      text: `select ${TASK_COLS} from public.tasks where agent_id = $1 order by created_at desc, id desc limit 26`,
      values: [s.agent],
    }),
  },
  {
    name: "GET /api/tasks?agent=…&status=cancelled",
    sql: (s) => ({
      text: `select ${TASK_COLS} from public.tasks where agent_id = $1 and status = 'cancelled' order by created_at desc, id desc limit 26`,
      values: [s.agent],
    }),
  },
  {
    name: "GET /api/tasks cursor 5,000 rows deep",
    sql: (s) => ({
      text: `select ${TASK_COLS} from public.tasks where ${olderThanBoundedSql("created_at", 1)} order by created_at desc, id desc limit 26`,
      values: [s.deepTask.c, s.deepTask.i],
    }),
    before: (s) => ({
      text: `select ${TASK_COLS} from public.tasks where ${olderThanSql("created_at", 1)} order by created_at desc, id desc limit 26`,
      values: [s.deepTask.c, s.deepTask.i],
    }),
  },
  {
    name: "GET /api/tasks?agent=… cursor 5,000 rows deep",
    sql: (s) => ({
      text: `select ${TASK_COLS} from public.tasks where agent_id = $3 and ${olderThanBoundedSql("created_at", 1)}
              order by created_at desc, id desc limit 26`,
      values: [s.deepTask.c, s.deepTask.i, s.agent],
    }),
    before: (s) => ({
      text: `select ${TASK_COLS} from public.tasks where agent_id = $3 and ${olderThanSql("created_at", 1)}
              order by created_at desc, id desc limit 26`,
      values: [s.deepTask.c, s.deepTask.i, s.agent],
    }),
  },
  {
    name: "GET /api/tasks/:id",
    sql: (s) => ({ text: `select * from public.tasks where id = $1`, values: [s.seed.bigTaskId] }),
  },
  {
    name: "task page: its steps (bigTaskSteps)",
    sql: (s) => ({
      text: `select * from public.task_steps where task_id = $1 order by started_at, id limit 1000`,
      values: [s.seed.bigTaskId],
    }),
  },
  {
    name: "task page: its approvals",
    sql: (s) => ({
      text: `select * from public.approvals where task_id = $1 order by requested_at, revision`,
      values: [s.seed.bigTaskId],
    }),
  },
  {
    name: "/review: completed in 16 h (count)",
    sql: () => ({ text: `select count(*) from public.tasks where status = 'completed' and finished_at >= now() - interval '16 hours'` }),
  },
  {
    name: "/review: failed|stopped in 16 h (count)",
    sql: () => ({
      text: `select count(*) from public.tasks where status in ('failed', 'stopped') and finished_at >= now() - interval '16 hours'`,
    }),
  },
  {
    name: "/review: waiting_approval (count)",
    sql: () => ({ text: `select count(*) from public.tasks where status = 'waiting_approval'` }),
  },
  {
    name: "morning digest: tasks ended in the night",
    sql: () => ({
      text: `select id, agent_id, status, status_reason, prompt, cost_micros, finished_at from public.tasks
              where finished_at >= now() - interval '24 hours' and finished_at < now() order by finished_at limit 1000`,
    }),
  },
  // --- dead letters ---------------------------------------------------------------------------------------------
  {
    name: "GET /api/dead-letters?status=pending",
    sql: () => ({ text: `select * from public.dead_letters where status = 'pending' order by created_at desc, id desc limit 51` }),
  },
  {
    name: "GET /api/dead-letters?agent=…",
    sql: (s) => ({
      text: `select * from public.dead_letters where agent_id = $1 order by created_at desc, id desc limit 51`,
      values: [s.agent],
    }),
  },
  {
    name: "console /failed: dead letters in 24 h (count)",
    sql: () => ({ text: `select count(*) from public.dead_letters where created_at >= now() - interval '24 hours'` }),
  },
  {
    name: "replay_dead_letter_announced",
    write: true,
    sql: (s) => ({
      text: `select * from public.replay_dead_letter_announced($1, null, null, null, null, 'bench')`,
      values: [s.seed.deadLetterId],
    }),
  },
  // --- the outbox and the crons ---------------------------------------------------------------------------------
  {
    name: "outbox_claim (relay, 100)",
    write: true,
    sql: () => ({ text: `select * from public.outbox_claim(100, 30)` }),
  },
  {
    name: "outbox_prune 7 days (sweeper, one call)",
    write: true,
    sql: () => ({ text: `select public.outbox_prune(7 * 86400)` }),
    // The function before 20261206141000_retention.sql: every row past the window in one statement.
    before: () => ({ text: `delete from public.outbox o where o.sent_at is not null and o.sent_at < now() - interval '7 days'` }),
  },
  {
    name: "prune_bookkeeping webhook_attempts 30 d (one batch)",
    write: true,
    sql: () => ({ text: `select public.prune_bookkeeping('webhook_attempts', 30 * 86400)` }),
  },
  {
    name: "prune_bookkeeping notifications 30 d (one batch)",
    write: true,
    sql: () => ({ text: `select public.prune_bookkeeping('notifications', 30 * 86400)` }),
  },
  {
    name: "engine pruning: finished runs 7 d (one batch)",
    write: true,
    sql: () => ({
      text: PRUNE_RUNS_SQL,
      values: [Date.now() - 7 * 86_400_000, 1000],
    }),
  },
  {
    name: "engine pruning: processed events 7 d (one batch)",
    write: true,
    sql: () => ({
      text: PRUNE_EVENTS_SQL,
      values: [Date.now() - 7 * 86_400_000, 1000],
    }),
  },
  {
    name: "schedules due (dispatch-schedules cron)",
    sql: () => ({ text: `select * from public.schedules where enabled and next_run_at <= now() order by next_run_at limit 50` }),
  },
  {
    name: "sweep_notifications (cron)",
    write: true,
    sql: () => ({ text: `select * from public.sweep_notifications()` }),
  },
  {
    name: "console_login_begin (sign-in form)",
    write: true,
    sql: () => ({ text: `select * from public.console_login_begin('10.9.9.9', 900)` }),
  },
  {
    name: "engine: active runs at start (loadActiveRuns)",
    sql: () => ({
      text: `select * from inngest_local.runs where status not in ('completed','failed','cancelled') order by created_at`,
    }),
  },
];

async function main(): Promise<number> {
  const started = Date.now();
  const dataDir = await mkdtemp(join(tmpdir(), "nightshift-bench-scale-"));
  let stack: DataStack | undefined;
  const clients: pg.Client[] = [];
  try {
    stack = await startDataStack({ dataDir, persistent: false });
    const connect = async () => {
      const c = new pg.Client({ connectionString: stack!.databaseUrl });
      c.on("error", () => {});
      await c.connect();
      clients.push(c);
      return c;
    };
    const sql = await connect();
    log(machineLine());
    log(`seeding ${TASKS} tasks over ${DAYS} days across ${AGENTS} agents …`);
    const seed = await seedScale(sql, stack.databaseUrl, { tasks: TASKS, days: DAYS, agents: AGENTS, bigTaskSteps: 400 });
    log(`seeded in ${seed.seconds.toFixed(1)} s: ${Object.entries(seed.counts).map(([k, v]) => `${k} ${v}`).join(", ")}`);

    const one = async <T>(text: string): Promise<T> => (await sql.query(text)).rows[0] as T;
    // 5,000 rows in (page 200 of 25), or half-way on a small seed.
    const deepT = (await sql.query(`select created_at, id from public.tasks order by created_at desc, id desc offset least(5000, (select count(*) / 2 from public.tasks)) limit 1`)).rows[0];
    const deepA = (
      await sql.query(
        `select requested_at, id from public.approvals where visible_at is not null order by requested_at desc, id desc
         offset least(5000, (select count(*) / 2 from public.approvals)) limit 1`,
      )
    ).rows[0];
    const ctx: Ctx = {
      seed,
      deepTask: { c: deepT.created_at.toISOString(), i: deepT.id },
      deepApproval: { c: deepA.requested_at.toISOString(), i: deepA.id },
      today: new Date().toISOString().slice(0, 10),
      agent: seed.agentIds[5]!,
      running: await one(`select id, agent_id as agent from public.tasks where status = 'running' order by created_at desc limit 1`),
      queued: await one(`select id, agent_id as agent from public.tasks where status = 'queued' order by created_at desc limit 1`),
      reserved: await one(`select task_id, step_id from public.budget_reservations where status = 'reserved' order by reserved_at desc limit 1`),
    };
    const bigTables = new Map<string, number>(
      (
        await sql.query<{ name: string; n: string }>(
          `select c.relname as name, c.reltuples::bigint as n from pg_class c join pg_namespace ns on ns.oid = c.relnamespace
            where ns.nspname in ('public', 'inngest_local') and c.relkind = 'r' and c.reltuples > $1`,
          [BIG_TABLE_ROWS],
        )
      ).rows.map((r) => [r.name, Number(r.n)]),
    );

    const migration = await readFile(SCALE_MIGRATION, "utf8");
    const indexNames = [...migration.matchAll(/create\s+(?:unique\s+)?index\s+(?:if not exists\s+)?([a-z0-9_]+)/gi)].map((m) => m[1]!);

    const explainer = await connect();
    await explainer.query(`load 'auto_explain'`);
    await explainer.query(
      `set auto_explain.log_min_duration = 0; set auto_explain.log_analyze = on; set auto_explain.log_buffers = on;
       set auto_explain.log_nested_statements = on; set auto_explain.log_format = json; set auto_explain.log_timing = off;
       set client_min_messages = log`,
    );
    const timer = await connect();

    const phases: { label: string; figures: Figure[] }[] = [];
    if (!AFTER_ONLY) {
      await sql.query(indexNames.map((n) => `drop index if exists public.${n};`).join("\n"));
      // The functions the migration rewrites, as the migrations before it left them.
      for (const f of await previousDefinitions(migration)) await sql.query(f);
      await sql.query("analyze");
      phases.push({
        label: `before (without ${indexNames.join(", ")}; the old spend_by_model; the old keyset filter; the old outbox_prune)`,
        figures: await runProbes("before"),
      });
      await sql.query(migration);
      await sql.query("analyze");
    }
    phases.push({ label: "after", figures: await runProbes("after") });

    async function runProbes(phase: "before" | "after"): Promise<Figure[]> {
      const out: Figure[] = [];
      for (const p of probes) {
        const build = phase === "before" && p.before ? p.before : p.sql;
        try {
          const plans: unknown[] = [];
          const onNotice = (n: { message?: string }) => {
            const m = /plan:\s*([\s\S]*)$/.exec(n.message ?? "");
            if (m) {
              try {
                plans.push(JSON.parse(m[1]!));
              } catch {
                /* not a plan */
              }
            }
          };
          explainer.on("notice", onNotice);
          const q0 = build(ctx);
          if (p.write) await explainer.query("begin");
          const res = await explainer.query(q0.text, q0.values);
          if (p.write) await explainer.query("rollback");
          explainer.off("notice", onNotice);
          const ms: number[] = [];
          for (let i = 0; i < RUNS; i++) {
            const q = build(ctx);
            const t = performance.now();
            if (p.write) await timer.query("begin");
            await timer.query(q.text, q.values);
            if (p.write) await timer.query("rollback");
            ms.push(performance.now() - t);
          }
          const st = summarize(ms);
          const v = judge(plans, bigTables);
          out.push({ name: p.name, rows: res.rowCount ?? 0, p50: st.p50, p99: st.p99, buffers: v.buffers, verdict: v.verdict });
        } catch (e) {
          explainer.removeAllListeners("notice");
          await explainer.query("rollback").catch(() => {});
          await timer.query("rollback").catch(() => {});
          out.push({ name: p.name, rows: 0, p50: NaN, p99: NaN, buffers: 0, verdict: `ERROR ${e instanceof Error ? e.message : String(e)}` });
        }
      }
      return out;
    }

    // The real paths, through PostgREST, as the routes and pages call them.
    const db = adminClient(stack.supabaseUrl, stack.secretKey);
    const session = { sid: "bench", exp: Date.now() + 3_600_000 } as never;
    const deepCursor = encodeKeyset(ctx.deepTask.c, ctx.deepTask.i);
    const paths: { name: string; run: () => Promise<unknown> }[] = [
      { name: "listTasks newest 25 (GET /api/tasks, console /)", run: () => listTasks(db, { limit: 25 }) },
      { name: "listTasks agent+status", run: () => listTasks(db, { limit: 25, agent: ctx.agent, status: "cancelled" }) },
      { name: "listTasks cursor 5,000 rows deep", run: () => listTasks(db, { limit: 25, cursor: deepCursor }) },
      { name: "getTask (GET /api/tasks/:id)", run: () => getTask(db, seed.bigTaskId) },
      { name: "listApprovals newest 50", run: () => listApprovals(db, { limit: 50 }) },
      { name: "listApprovals cursor 5,000 rows deep", run: () => listApprovals(db, { limit: 50, cursor: encodeKeyset(ctx.deepApproval.c, ctx.deepApproval.i) }) },
      { name: "listPendingApprovals (review queue)", run: () => listPendingApprovals(db, 100) },
      { name: "listDeadLetters pending", run: () => listDeadLetters(db, { limit: 50, status: "pending" }) },
      { name: "console /: agentSpendToday", run: () => agentSpendToday(session, db) },
      { name: "console /review: morningSummary", run: () => morningSummary(session, db) },
      { name: "console /review: reviewQueue", run: () => reviewQueue(session, db) },
      { name: `console /tasks/<id>: taskDetail (${seed.counts.task_steps ? "400 steps" : ""})`, run: () => taskDetail(session, db, seed.bigTaskId) },
      { name: "console spend chart: spendHistory 14 days", run: () => spendHistory(db) },
    ];
    const pathFigures: { name: string; p50: number; p99: number }[] = [];
    for (const p of paths) {
      try {
        await p.run();
        const ms: number[] = [];
        for (let i = 0; i < RUNS; i++) {
          const t = performance.now();
          await p.run();
          ms.push(performance.now() - t);
        }
        const st = summarize(ms);
        pathFigures.push({ name: p.name, p50: st.p50, p99: st.p99 });
      } catch (e) {
        pathFigures.push({ name: `${p.name} ERROR ${e instanceof Error ? e.message : String(e)}`, p50: NaN, p99: NaN });
      }
    }

    const la = loadavg().map((v) => v.toFixed(2)).join(" ");
    console.log(`\n# bench:scale — ${TASKS} tasks over ${DAYS} days, ${AGENTS} agents; ${RUNS} runs per probe; load average ${la}`);
    console.log(Object.entries(seed.counts).map(([k, v]) => `${k}=${v}`).join(" "));
    for (const ph of phases) {
      console.log(`\n## SQL at size — ${ph.label}`);
      console.log(`| probe | rows | p50 ms | p99 ms | buffers | plan |\n|---|---:|---:|---:|---:|---|`);
      for (const f of ph.figures) console.log(`| ${f.name} | ${f.rows} | ${fmtMs(f.p50)} | ${fmtMs(f.p99)} | ${f.buffers} | ${f.verdict} |`);
    }
    console.log(`\n## Real paths through PostgREST (after)`);
    console.log(`| path | p50 ms | p99 ms |\n|---|---:|---:|`);
    for (const f of pathFigures) console.log(`| ${f.name} | ${fmtMs(f.p50)} | ${fmtMs(f.p99)} |`);
    console.log(`\nload average at the end: ${loadavg().map((v) => v.toFixed(2)).join(" ")}; total ${((Date.now() - started) / 1000).toFixed(0)} s`);
    return 0;
  } catch (e) {
    console.error(`[bench] failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    return 1;
  } finally {
    for (const c of clients) await c.end().catch(() => {});
    await stack?.stop().catch(() => {});
    await rm(dataDir, { recursive: true, force: true }).catch(() => {});
  }
}

/** For each `create or replace function public.<name>(` in `migration`: its last definition in an earlier migration. */
async function previousDefinitions(migration: string): Promise<string[]> {
  const names = [...migration.matchAll(/create or replace function public\.([a-z0-9_]+)\(/gi)].map((m) => m[1]!);
  const dir = join(root, "supabase/migrations");
  const files = (await readdir(dir)).filter((f) => f.endsWith(".sql") && f < "20261206140000").sort();
  const out: string[] = [];
  for (const name of names) {
    let def: string | undefined;
    for (const f of files) {
      const text = await readFile(join(dir, f), "utf8");
      const re = new RegExp(`create (?:or replace )?function public\\.${name}\\([\\s\\S]*?\\$\\$;`, "gi");
      for (const m of text.matchAll(re)) def = m[0];
    }
    if (!def) throw new Error(`no earlier definition of public.${name}`);
    out.push(def.replace(/^create (?:or replace )?function/i, "create or replace function"));
  }
  return out;
}

interface PlanNode {
  "Node Type": string;
  "Relation Name"?: string;
  "Index Name"?: string;
  "Actual Rows"?: number;
  "Actual Loops"?: number;
  "Rows Removed by Filter"?: number;
  "Shared Hit Blocks"?: number;
  "Shared Read Blocks"?: number;
  Plans?: PlanNode[];
}

/** Flags what grows with a table: a sequential scan of a big table, a sort of many rows. */
function judge(plans: unknown[], bigTables: Map<string, number>): { verdict: string; buffers: number } {
  const flags = new Set<string>();
  const indexes = new Set<string>();
  let buffers = 0;
  const walk = (n: PlanNode) => {
    const rel = n["Relation Name"];
    const examined = ((n["Actual Rows"] ?? 0) + (n["Rows Removed by Filter"] ?? 0)) * (n["Actual Loops"] ?? 1);
    if (n["Node Type"] === "Seq Scan" && rel && bigTables.has(rel)) flags.add(`SEQ SCAN ${rel} (${examined} rows)`);
    if (n["Node Type"] === "Sort") {
      const input = n.Plans?.[0]?.["Actual Rows"] ?? n["Actual Rows"] ?? 0;
      if (input > BIG_SORT_ROWS) flags.add(`SORT ${input} rows`);
    }
    // An index scan that reads and throws away many rows (e.g. an `or` the index cannot start from) grows too.
    const removed = (n["Rows Removed by Filter"] ?? 0) * (n["Actual Loops"] ?? 1);
    if (n["Node Type"] !== "Seq Scan" && removed > BIG_SORT_ROWS) flags.add(`FILTERED ${removed} rows (${rel ?? n["Index Name"] ?? n["Node Type"]})`);
    if (n["Index Name"]) indexes.add(n["Index Name"]);
    for (const c of n.Plans ?? []) walk(c);
  };
  for (const p of plans) {
    const top = (Array.isArray(p) ? p[0] : p) as { Plan?: PlanNode } | undefined;
    if (!top?.Plan) continue;
    buffers = Math.max(buffers, (top.Plan["Shared Hit Blocks"] ?? 0) + (top.Plan["Shared Read Blocks"] ?? 0));
    walk(top.Plan);
  }
  const idx = indexes.size ? `index: ${[...indexes].join(", ")}` : "no index";
  return { verdict: flags.size ? `**${[...flags].join("; ")}** (${idx})` : idx, buffers };
}

process.exitCode = await main();
