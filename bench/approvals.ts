// npm run bench:approvals — the time from a reviewer's decision to the task resuming, through the local engine.
//
// The real parts, as bench/submit.ts runs them: a temporary data stack (embedded Postgres + PostgREST), the offline
// Claude double and the local Inngest engine in this process; the app as `next start` on a production build (child
// process group), synced with the engine, so the engine calls the app's real run-task over the SDK's HTTP protocol.
//
// Each task is a content draft (content drafts always need approval) submitted with POST /api/tasks. Once its
// approval is visible, the decision is made the way an app makes it: POST /api/approvals/:id (API key) — the
// Postgres compare-and-set, then the `approval/decision.made` wake-up to the engine. Measured from the moment that
// request is sent (t0), with the engine's own history (its clock is this process's Date.now()):
//   decided    the POST's answer (the CAS + sending the event)
//   matched    the engine matched the event to the run's waitForEvent (`wait.matched`)
//   resumed    the run's first step after the wait, `approval-draft-1-resolve`, completed — it reads the decision
//              from the database; the engine records a step when the SDK reports it, so this is the step's end
//   finished   the task row is `completed` (the finish step ran too)
// Two phases of N = 50 tasks each:
//   one at a time  every approval is visible first; then each is decided alone, on a quiet system, and the next
//                  decision waits until the previous task finished;
//   all at once    50 visible approvals decided together (50 concurrent POSTs), like a reviewer clearing a queue.
// Goal (issue 5): p99 decision → resumed < 1 s. Prints p50/p90/p99/max; stops everything it started.
//
//   npx tsx bench/approvals.ts [--no-build] [--n 50]
import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { createApiKey } from "../lib/api-keys";
import { scenarioMarker, startClaudeDouble, type ClaudeDouble } from "../local/claude/server";
import { startDataStack, type DataStack } from "../local/data-stack";
import { startEngine, type Engine } from "../local/engine";
import { adminClient, buildUnlessAsked, cleanupStack, DIST_DIR, log, machineLine, startNext, waitUntil, type NextServer } from "./lib/next-app";
import { fmtMs, summarize } from "./lib/stats";

const argv = process.argv.slice(2);
const args = new Set(argv);
const nAt = argv.indexOf("--n");
const N = nAt >= 0 ? Number(argv[nAt + 1]) : 50;
if (!Number.isInteger(N) || N < 1) throw new Error("--n takes a positive whole number");
const GOAL_P99_MS = 1_000;
const RESOLVE_STEP = "approval-draft-1-resolve";

interface Sample {
  decidedMs: number;
  matchedMs: number;
  resumedMs: number;
  finishedMs: number;
}

async function main(): Promise<number> {
  const started = Date.now();
  const cleanup = cleanupStack();
  let stack: DataStack, double: ClaudeDouble, engine: Engine, app: NextServer, apiKey: string, sql: pg.Client;

  try {
    buildUnlessAsked(args);
    const dataDir = await mkdtemp(join(tmpdir(), "nightshift-bench-approvals-"));
    cleanup.push(() => rm(dataDir, { recursive: true, force: true }));
    stack = await startDataStack({ dataDir, persistent: false });
    cleanup.push(() => stack.stop());
    double = await startClaudeDouble();
    cleanup.push(() => double.stop());
    engine = await startEngine({ databaseUrl: stack.databaseUrl, port: 0 });
    cleanup.push(() => engine.stop());
    app = await startNext({
      SUPABASE_URL: stack.supabaseUrl,
      SUPABASE_SECRET_KEY: stack.secretKey,
      ANTHROPIC_BASE_URL: double.url,
      ANTHROPIC_API_KEY: "",
      INNGEST_DEV: engine.url,
    });
    const appServer = app;
    cleanup.push(() => appServer.stop());
    await engine.sync(`${app.url}/api/inngest`);
    apiKey = (await createApiKey(adminClient(stack.supabaseUrl, stack.secretKey), "bench")).key;
    sql = new pg.Client({ connectionString: stack.databaseUrl });
    sql.on("error", () => {});
    await sql.connect();
    const sqlClient = sql;
    cleanup.push(() => sqlClient.end());
    // 2N content drafts reserve their worst case at once; the seeded $1/day would make some wait for tomorrow.
    await sql.query("update public.agents set daily_budget_micros = 1000000000 where id = 'content'");
    log(`stack up in ${((Date.now() - started) / 1000).toFixed(1)} s: app ${app.url}, engine ${engine.url}`);
  } catch (e) {
    console.error(`[bench] setup failed: ${e instanceof Error ? e.message : String(e)}`);
    await cleanup.run();
    return 1;
  }

  try {
    const post = async (path: string, body: unknown) => {
      const res = await fetch(`${app.url}${path}`, {
        method: "POST",
        headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      const text = await res.text();
      return { status: res.status, json: (text ? JSON.parse(text) : null) as Record<string, unknown> };
    };

    /** Submits `n` drafts and waits until each has a visible pending approval; returns task id → approval id. */
    const drafts = async (n: number, tag: string): Promise<{ taskId: string; approvalId: string }[]> => {
      const ids: string[] = [];
      for (let i = 0; i < n; i++) {
        const scenario = `bench-${tag}-${i}-${randomUUID().slice(0, 8)}`;
        double.script(scenario, [{ text: `Draft ${tag} ${i}: a short post about the night shift.` }]);
        const r = await post("/api/tasks", { agent: "content", prompt: `${scenarioMarker(scenario)} Write post ${i}.` });
        if (r.status !== 202) throw new Error(`POST /api/tasks answered ${r.status}: ${JSON.stringify(r.json)}`);
        ids.push(r.json.task_id as string);
      }
      let rows: { task_id: string; id: string }[] = [];
      await waitUntil(
        async () => {
          rows = (
            await sql.query<{ task_id: string; id: string }>(
              "select task_id, id from public.approvals where task_id = any($1::uuid[]) and visible_at is not null and status = 'pending'",
              [ids],
            )
          ).rows;
          return rows.length === n;
        },
        120_000,
        `${n} approvals to be visible (${rows.length} so far)`,
        app.tail,
      );
      const byTask = new Map(rows.map((r) => [r.task_id, r.id]));
      return ids.map((taskId) => ({ taskId, approvalId: byTask.get(taskId)! }));
    };

    const taskRow = async (taskId: string) =>
      (await sql.query<{ status: string; run_id: string | null; finished_at: Date | null }>("select status, run_id, finished_at from public.tasks where id = $1", [taskId]))
        .rows[0]!;

    /** Decides one approval; t0 is taken right before the request is sent. */
    const decide = async (approvalId: string) => {
      const t0 = Date.now();
      const p0 = performance.now();
      const r = await post(`/api/approvals/${approvalId}`, { decision: "approve" });
      const decidedMs = performance.now() - p0;
      if (r.status !== 200 || r.json.outcome !== "decided") throw new Error(`decision answered ${r.status}: ${JSON.stringify(r.json)}`);
      return { t0, decidedMs };
    };

    /** Waits (one query per poll, so polling stays light) until every task is completed. */
    const completed = (taskIds: string[]) =>
      waitUntil(
        async () =>
          (await sql.query<{ n: number }>("select count(*)::int as n from public.tasks where id = any($1::uuid[]) and status = 'completed'", [taskIds]))
            .rows[0]!.n === taskIds.length,
        120_000,
        `${taskIds.length} task(s) to complete`,
        app.tail,
      );

    /** After the task finished: its run's history and the task row give the timestamps (polling does not). */
    const measure = async (taskId: string, t0: number, decidedMs: number): Promise<Sample> => {
      const t = await taskRow(taskId);
      if (t.status !== "completed") throw new Error(`task ${taskId} is ${t.status}`);
      const run = await engine.getRun(t.run_id!);
      if (!run) throw new Error(`no run ${t.run_id} for task ${taskId}`);
      const matched = run.history.find((h) => h.type === "wait.matched");
      const resolved = run.history.find((h) => h.type === "step.completed" && h.step_name === RESOLVE_STEP);
      if (!matched || !resolved) {
        throw new Error(`run ${run.run_id}: no wait.matched or ${RESOLVE_STEP} in its history: ${JSON.stringify(run.history.map((h) => [h.type, h.step_name]))}`);
      }
      return {
        decidedMs,
        matchedMs: Date.parse(matched.at) - t0,
        resumedMs: Date.parse(resolved.at) - t0,
        finishedMs: t.finished_at!.getTime() - t0,
      };
    };

    // --- warm-up: one task through the whole path (loads the routes, fills pools) ---
    const [warm] = await drafts(1, "warm");
    const w = await decide(warm!.approvalId);
    await completed([warm!.taskId]);
    await measure(warm!.taskId, w.t0, w.decidedMs);
    log("warm-up task done");

    // --- one at a time ---
    const seqDrafts = await drafts(N, "seq");
    log(`${N} approvals visible; deciding them one at a time`);
    const sequential: Sample[] = [];
    for (const d of seqDrafts) {
      const { t0, decidedMs } = await decide(d.approvalId);
      await completed([d.taskId]);
      sequential.push(await measure(d.taskId, t0, decidedMs));
    }
    log(`one at a time: resumed p50 ${fmtMs(summarize(sequential.map((s) => s.resumedMs)).p50)} ms`);

    // --- all at once ---
    const burstDrafts = await drafts(N, "burst");
    log(`${N} approvals visible; deciding them all at once`);
    const decisions = await Promise.all(burstDrafts.map((d) => decide(d.approvalId)));
    await completed(burstDrafts.map((d) => d.taskId));
    const burst: Sample[] = [];
    for (const [i, d] of burstDrafts.entries()) burst.push(await measure(d.taskId, decisions[i]!.t0, decisions[i]!.decidedMs));

    report(sequential, burst);
    log(`done in ${((Date.now() - started) / 1000).toFixed(0)} s`);
    return 0;
  } catch (e) {
    console.error(`[bench] run failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n${app.tail()}`);
    return 1;
  } finally {
    await cleanup.run();
  }
}

function report(sequential: Sample[], burst: Sample[]): void {
  const line = "─".repeat(100);
  console.log(`\n${line}\nApproval decision → task resumes, through the local engine — ${new Date().toISOString()}`);
  console.log(machineLine());
  console.log(
    `app: next start (${DIST_DIR}); local engine, Supabase /rest/v1 proxy and Claude double in the bench process; embedded Postgres + PostgREST`,
  );
  console.log(`decision: POST /api/approvals/:id {decision: approve} with an API key; times from the moment it is sent`);
  console.log(line);
  const row = (name: string, xs: number[]) => {
    const s = summarize(xs);
    console.log(
      `  ${name.padEnd(44)} p50 ${fmtMs(s.p50).padStart(7)}  p90 ${fmtMs(s.p90).padStart(7)}  p99 ${fmtMs(s.p99).padStart(7)}  max ${fmtMs(s.max).padStart(7)}  ms`,
    );
  };
  for (const [title, xs] of [
    [`One at a time (N = ${sequential.length}, quiet system)`, sequential],
    [`All at once (N = ${burst.length} concurrent decisions)`, burst],
  ] as const) {
    console.log(`\n${title}`);
    row("decision answered (CAS + event sent)", xs.map((s) => s.decidedMs));
    row("→ engine matched the wait (wait.matched)", xs.map((s) => s.matchedMs));
    row(`→ resumed: ${RESOLVE_STEP} done`, xs.map((s) => s.resumedMs));
    row("→ task completed (finish step done)", xs.map((s) => s.finishedMs));
  }
  const p99 = summarize(sequential.map((s) => s.resumedMs)).p99;
  const p99burst = summarize(burst.map((s) => s.resumedMs)).p99;
  console.log(
    `\nGoal p99 decision → resumed < ${GOAL_P99_MS} ms: one at a time ${fmtMs(p99)} ms ${p99 < GOAL_P99_MS ? "MET" : "MISSED"}; ` +
      `all at once ${fmtMs(p99burst)} ms ${p99burst < GOAL_P99_MS ? "MET" : "MISSED"}`,
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
