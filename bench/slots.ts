// npm run bench:slots — a queue of tasks behind an agent with 2 slots (issue 10): how many engine -> app calls each
// task spends waiting for a slot, and how long a slot stays free while tasks wait.
//
// Real parts: the embedded data stack, the offline Claude double, the local engine in its own process (as Inngest is
// never in the app's process: on Vercel it is Inngest Cloud, under `npm run dev` the launcher's process, next dev
// another), the app's own Inngest functions served by the SDK behind a counting proxy (each call's task id is read
// from its body). Tasks are submitted with submitTask (the outbox); the relay registered by the app's functions
// sends their events.
//
//   BENCH_TASKS=1000 (default) tasks, one model turn each.
//   BENCH_ENGINE=inproc: the engine in this process instead (sessions 6–7's layout: engine, app, double and the
//   submissions on one event loop). BENCH_MAX_INFLIGHT (inproc only): the engine's cap on calls in flight.
//   calls spent waiting per task = its run-task calls minus those of a task that never waited (the minimum).
//   idle slot time = for each slot release (a task's finished_at) while tasks still wait, the time until the next
//   task's turn is recorded (its slot was handed over, the wake-up relayed, the run called and the turn taken).
//   hand-over to work = for each slot handed to a waiting task, from the hand-over (its wake-up recorded in the
//   outbox, in the release's transaction) until the engine's call that runs the woken task's turn reaches the app:
//   the time the slot belongs to a task that is not working yet. Split into relay (recorded -> marked sent) and
//   engine (sent -> the call); the turn itself (that call until the turn is recorded) is work, not idleness.
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { cpus, loadavg, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { startClaudeDouble, type ClaudeDouble } from "../local/claude/server";
import { startDataStack, type DataStack } from "../local/data-stack";
import { spawn, type ChildProcess } from "node:child_process";
import { openSync, closeSync, readFileSync } from "node:fs";
import { startEngine, type Engine } from "../local/engine";
import { freePort } from "../local/ports";
import { adminClient } from "./lib/next-app";

const N = Number(process.env["BENCH_TASKS"] ?? 1000);
const SLOTS = 2;
const AGENT = "queue2";

function body(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

const pct = (xs: number[], p: number) => {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};

async function main() {
  const dataDir = await mkdtemp(join(tmpdir(), "nightshift-bench-slots-"));
  let stack: DataStack | undefined;
  let double: ClaudeDouble | undefined;
  let engine: Engine | undefined;
  let engineProc: ChildProcess | undefined;
  let appServer: Server | undefined;
  let proxy: Server | undefined;
  try {
    stack = await startDataStack({ dataDir, persistent: false });
    double = await startClaudeDouble();
    // BENCH_DEBUG=1 prints the engine's log lines of the slowest hand-overs' runs.
    const inproc = process.env["BENCH_ENGINE"] === "inproc";
    if (process.env["BENCH_MAX_INFLIGHT"] && !inproc) throw new Error("BENCH_MAX_INFLIGHT needs BENCH_ENGINE=inproc");
    const engineLog: string[] = [];
    const engineLogFile = join(dataDir, "engine.log");
    let engineUrl: string;
    if (inproc) {
      engine = await startEngine({
        databaseUrl: stack.databaseUrl,
        port: 0,
        // BENCH_MAX_INFLIGHT: the engine's cap on calls in flight at once (its default otherwise).
        ...(process.env["BENCH_MAX_INFLIGHT"] ? { maxInflight: Number(process.env["BENCH_MAX_INFLIGHT"]) } : {}),
        ...(process.env["BENCH_DEBUG"] ? { log: (l: string) => engineLog.push(`${new Date().toISOString()} ${l}`) } : {}),
      });
      engineUrl = engine.url;
    } else {
      // The CLI engine, its output to a file (a pipe this busy process reads late would block the engine's
      // synchronous writes to it). Its journal in the bench's data directory, as `npm run dev` keeps it in .data.
      const port = await freePort();
      const fd = openSync(engineLogFile, "a");
      const args = ["--import", "tsx", "local/engine/main.ts", "--database-url", stack.databaseUrl, "--port", String(port), "--journal-dir", join(dataDir, "engine-journal")];
      engineProc = spawn(process.execPath, args, { stdio: ["ignore", fd, fd] });
      closeSync(fd);
      let exited = false;
      engineProc.once("exit", () => (exited = true));
      engineUrl = `http://127.0.0.1:${port}`;
      for (const deadline = Date.now() + 60_000; ; ) {
        if (exited) throw new Error(`engine exited before it was ready: ${readFileSync(engineLogFile, "utf8").slice(-2000)}`);
        if (await fetch(`${engineUrl}/health`).then((r) => r.ok, () => false)) break;
        if (Date.now() > deadline) throw new Error("engine not ready within 60 s");
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    Object.assign(process.env, {
      SUPABASE_URL: stack.supabaseUrl,
      SUPABASE_SECRET_KEY: stack.secretKey,
      ANTHROPIC_BASE_URL: double.url,
      INNGEST_DEV: engineUrl,
      NEXT_TELEMETRY_DISABLED: "1",
    });
    const { inngest } = await import("../inngest/client");
    const { functions } = await import("../inngest/index");
    const { submitTask } = await import("../lib/tasks/submit");
    const { serve } = await import("inngest/node");
    const { directlySentCount, watchDirectSends } = await import("../inngest/outbox-relay");
    // Each direct send of a hand-over's wake-up: when the releasing step began it and when the engine accepted it.
    const directSends = new Map<string, { startedAt: number; sentAt: number }>();
    watchDirectSends((ids, startedAt, sentAt) => ids.forEach((id) => directSends.set(id, { startedAt, sentAt })));

    let appUrl = "";
    // The counting proxy: every engine -> app call, by task.
    const calls = new Map<string, number>();
    const firstCallAt = new Map<string, number>();
    const callTimes = new Map<string, number[]>();
    let totalCalls = 0;
    proxy = createServer(async (req, res) => {
      const buf = req.method === "POST" ? await body(req) : Buffer.alloc(0);
      if (req.method === "POST" && (req.url ?? "").includes("run-task")) {
        try {
          const j = JSON.parse(buf.toString("utf8")) as { event?: { data?: { task_id?: string } } };
          const id = j.event?.data?.task_id;
          if (id) {
            const at = Date.now();
            if (!calls.has(id)) firstCallAt.set(id, at);
            calls.set(id, (calls.get(id) ?? 0) + 1);
            (callTimes.get(id) ?? callTimes.set(id, []).get(id)!).push(at);
            totalCalls++;
          }
        } catch {}
      }
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) if (typeof v === "string" && k !== "host" && k !== "content-length") headers[k] = v;
      const r = await fetch(`${appUrl}${req.url}`, { method: req.method, headers, body: req.method === "POST" || req.method === "PUT" ? new Uint8Array(buf) : undefined });
      const out = Buffer.from(await r.arrayBuffer());
      const h: Record<string, string> = {};
      r.headers.forEach((v, k) => {
        if (k !== "content-length" && k !== "content-encoding" && k !== "transfer-encoding") h[k] = v;
      });
      res.writeHead(r.status, h).end(out);
    });
    proxy.keepAliveTimeout = 30_000;
    await new Promise<void>((r) => proxy!.listen(0, "127.0.0.1", () => r()));
    const proxyOrigin = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
    // The SDK registers the URL it is served at: the proxy's, so every call passes it.
    appServer = createServer(serve({ client: inngest, functions, serveOrigin: proxyOrigin, servePath: "/api/inngest" }));
    await new Promise<void>((r) => appServer!.listen(0, "127.0.0.1", () => r()));
    appUrl = `http://127.0.0.1:${(appServer.address() as AddressInfo).port}`;
    // What Engine.sync does: the SDK's serve handler answers a PUT by registering with the engine.
    const synced = await fetch(`${proxyOrigin}/api/inngest`, { method: "PUT" });
    if (!synced.ok) throw new Error(`sync failed (HTTP ${synced.status}): ${await synced.text()}`);

    const db = adminClient(stack.supabaseUrl, stack.secretKey);
    const ins = await db.from("agents").insert({
      id: AGENT,
      display_name: "Queue of two",
      model: "claude-haiku-4-5",
      system_prompt: "Answer briefly.",
      daily_budget_micros: 1_000_000_000,
      concurrency: SLOTS,
    });
    if (ins.error) throw new Error(ins.error.message);

    console.log(`[bench:slots] submitting ${N} tasks to an agent with ${SLOTS} slots`);
    // This process's event loop (the engine, the app's functions, the double and the submissions share it): how late
    // a timer fires, per second — a call that is ready waits at least that long to run.
    const loop = monitorEventLoopDelay({ resolution: 10 });
    loop.enable();
    const loopBySecond: { at: number; p99: number; max: number }[] = [];
    const loopTimer = setInterval(() => {
      loopBySecond.push({ at: Date.now(), p99: loop.percentile(99) / 1e6, max: loop.max / 1e6 });
      loop.reset();
    }, 1000);
    const started = Date.now();
    const ids: string[] = [];
    for (let i = 0; i < N; i += 50) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(50, N - i) }, (_, k) => submitTask(db, { agent: AGENT, prompt: `item ${i + k}` }, null, `bench-slots-${i + k}`)),
      );
      ids.push(...batch.map((t) => t.taskId));
    }
    const submitted = Date.now();
    console.log(`[bench:slots] submitted in ${((submitted - started) / 1000).toFixed(1)} s; waiting for all to finish`);
    for (;;) {
      const { count } = await db.from("tasks").select("id", { count: "exact", head: true }).eq("agent_id", AGENT).is("finished_at", null);
      if (count === 0) break;
      if (Date.now() - started > 60 * 60_000) throw new Error(`${count} tasks still unfinished after an hour`);
      await new Promise((r) => setTimeout(r, 1000));
    }
    const done = Date.now();
    clearInterval(loopTimer);
    loop.disable();

    // Timeline: when each task's turn was recorded and when it finished.
    const rows: { id: string; status: string; finished_at: string; turn_at: string | null }[] = [];
    for (let i = 0; i < ids.length; i += 200) {
      const part = ids.slice(i, i + 200);
      const { data: t } = await db.from("tasks").select("id,status,finished_at").in("id", part);
      const { data: s } = await db.from("task_steps").select("task_id,started_at").in("task_id", part).eq("step_id", "turn-1");
      const turnAt = new Map((s ?? []).map((x) => [x.task_id, x.started_at]));
      for (const x of t ?? []) rows.push({ id: x.id, status: x.status, finished_at: x.finished_at!, turn_at: turnAt.get(x.id) ?? null });
    }
    const completed = rows.filter((r) => r.status === "completed").length;
    const starts = rows.map((r) => Date.parse(r.turn_at ?? r.finished_at)).sort((a, b) => a - b);
    const finishes = rows.map((r) => Date.parse(r.finished_at)).sort((a, b) => a - b);
    // For each release while tasks still wait (all but the last SLOTS finishes), the next turn after it.
    // The submission burst: until every task's first call has been made, the one process here (app, engine,
    // double) is busy starting runs; releases after it show the steady state.
    const burstEnd = Math.max(...firstCallAt.values());
    const gaps: number[] = [];
    const steadyGaps: number[] = [];
    let j = 0;
    for (let k = 0; k < finishes.length - SLOTS; k++) {
      const f = finishes[k]!;
      while (j < starts.length && starts[j]! < f) j++;
      if (j < starts.length) {
        gaps.push(starts[j]! - f);
        if (f > burstEnd) steadyGaps.push(starts[j]! - f);
      }
      j++;
    }
    // Where a hand-over's time goes: recorded in the outbox (the release's transaction) -> sent by the relay
    // (marked sent once the engine accepted it) -> the woken task's turn recorded (resume call, claim, model call).
    const turnAtById = new Map(rows.map((r) => [r.id, r.turn_at ? Date.parse(r.turn_at) : null]));
    const relayMs: number[] = [];
    const slow: { taskId: string; sent: string; ms: number }[] = [];
    const resumeMs: number[] = [];
    // Per woken task: its first hand-over (recorded, relayed) — the slot is its own from then on.
    const handedAt = new Map<string, { created: number; sent: number }>();
    // The direct sends' split: release transaction start -> the step has the claimed wake-up (RPC returned) -> the
    // engine accepted it (inngest.send) -> the engine's call for the woken run reached the app.
    const directRpcMs: number[] = [];
    const directSendMs: number[] = [];
    const directCallMs: number[] = [];
    for (let from = 0; ; from += 1000) {
      const { data: ob, error: obErr } = await db
        .from("outbox")
        .select("event_id,data,created_at,sent_at")
        .eq("name", "agent/slot.released")
        .order("id")
        .range(from, from + 999);
      if (obErr) throw new Error(obErr.message);
      for (const o of ob ?? []) {
        const taskId = (o.data as { task_id?: string }).task_id;
        if (!o.sent_at || !taskId) continue;
        const created = Date.parse(o.created_at);
        const sent = Date.parse(o.sent_at);
        const d = directSends.get(o.event_id);
        if (d) {
          directRpcMs.push(d.startedAt - created);
          directSendMs.push(d.sentAt - d.startedAt);
          const call = (callTimes.get(taskId) ?? []).find((t) => t >= d.sentAt);
          if (call !== undefined) directCallMs.push(call - d.sentAt);
        }
        relayMs.push(sent - created);
        const h = handedAt.get(taskId);
        if (!h || created < h.created) handedAt.set(taskId, { created, sent });
        const turnAt = turnAtById.get(taskId);
        if (turnAt && turnAt >= sent) {
          resumeMs.push(turnAt - sent);
          if (process.env["BENCH_DEBUG"] && turnAt - sent > 2000) slow.push({ taskId, sent: o.sent_at, ms: turnAt - sent });
        }
      }
      if ((ob ?? []).length < 1000) break;
    }
    if (!inproc && process.env["BENCH_DEBUG"]) engineLog.push(...readFileSync(engineLogFile, "utf8").split("\n"));
    for (const x of slow.slice(0, 3)) {
      const { data: t } = await db.from("tasks").select("run_id").eq("id", x.taskId).single();
      console.log(`slow resume ${x.ms} ms, task ${x.taskId}, relayed ${x.sent}:`);
      for (const l of engineLog.filter((l) => t?.run_id && l.includes(t.run_id))) console.log(`  ${l}`);
    }
    // Hand-over -> the call that ran the woken task's turn (the last call to reach the app before the turn was
    // recorded), for hand-overs after the submission burst and for all.
    const toWork: number[] = [];
    const toWorkSteady: number[] = [];
    const engineMs: number[] = [];
    const turnWorkMs: number[] = [];
    for (const [taskId, h] of handedAt) {
      const turnAt = turnAtById.get(taskId);
      if (!turnAt) continue;
      const call = (callTimes.get(taskId) ?? []).filter((t) => t <= turnAt).pop();
      if (call === undefined || call < h.created) continue;
      toWork.push(call - h.created);
      if (h.created > burstEnd) toWorkSteady.push(call - h.created);
      engineMs.push(Math.max(0, call - h.sent));
      turnWorkMs.push(turnAt - call);
    }
    const loopIn = (from: number, to: number) => loopBySecond.filter((x) => x.at > from && x.at <= to);
    const loopBurst = loopIn(started, burstEnd);
    const loopSteady = loopIn(burstEnd, done);
    const perTask = ids.map((id) => calls.get(id) ?? 0);
    const base = Math.min(...perTask);
    const waiting = perTask.map((c) => c - base);
    const { count: leftWaiters } = await db.from("agent_slot_waiters").select("task_id", { count: "exact", head: true });

    const wall = (done - submitted) / 1000;
    console.log("");
    console.log(`bench:slots — ${new Date().toISOString()} — ${cpus().length} CPUs (${cpus()[0]?.model ?? "?"}), ${(totalmem() / 2 ** 30).toFixed(1)} GB`);
    console.log(`tasks ${N}, slots ${SLOTS}: ${completed} completed in ${wall.toFixed(1)} s after submission (${(N / wall).toFixed(1)} tasks/s)`);
    console.log(`engine -> app calls: ${totalCalls} for run-task (${(totalCalls / N).toFixed(2)} per task); a task that never waited: ${base}`);
    console.log(
      `calls spent waiting per task: mean ${(waiting.reduce((a, b) => a + b, 0) / N).toFixed(2)}, p50 ${pct(waiting, 50)}, p99 ${pct(waiting, 99)}, max ${Math.max(...waiting)} (goal: at most 2)`,
    );
    console.log(
      `slot idle after a release while tasks wait: p50 ${pct(gaps, 50)} ms, p99 ${pct(gaps, 99)} ms, max ${Math.max(0, ...gaps)} ms over ${gaps.length} releases (goal: never more than 1 s)`,
    );
    console.log(
      `  after the submission burst (every task's first call made, ${((burstEnd - submitted) / 1000).toFixed(1)} s after submission): p50 ${pct(steadyGaps, 50)} ms, p99 ${pct(steadyGaps, 99)} ms, max ${Math.max(0, ...steadyGaps)} ms over ${steadyGaps.length} releases`,
    );
    console.log(
      `  of which hand-over recorded -> relayed to the engine: p50 ${pct(relayMs, 50)} ms, p99 ${pct(relayMs, 99)} ms, max ${Math.max(0, ...relayMs)} ms (${relayMs.length} wake-ups)`,
    );
    console.log(`  wake-ups sent by the releasing step itself (release_agent_slot_direct + deliverClaimed): ${directlySentCount()}; the rest by relay passes`);
    const split = (xs: number[]) => `p50 ${pct(xs, 50)} / p90 ${pct(xs, 90)} / p99 ${pct(xs, 99)} / max ${Math.max(0, ...xs)} ms`;
    console.log(`  direct sends: release transaction start -> the step has its wake-up: ${split(directRpcMs)}`);
    console.log(`    -> the engine accepted it (inngest.send): ${split(directSendMs)}; -> the engine's call reached the app: ${split(directCallMs)}`);
    console.log(`  of which relayed -> woken task's turn recorded: p50 ${pct(resumeMs, 50)} ms, p99 ${pct(resumeMs, 99)} ms, max ${Math.max(0, ...resumeMs)} ms`);
    console.log(
      `slot handed over -> the woken task's turn called (slot held, task not working yet): p50 ${pct(toWork, 50)} ms, p99 ${pct(toWork, 99)} ms, max ${Math.max(0, ...toWork)} ms over ${toWork.length} hand-overs`,
    );
    console.log(
      `  after the submission burst: p50 ${pct(toWorkSteady, 50)} ms, p99 ${pct(toWorkSteady, 99)} ms, max ${Math.max(0, ...toWorkSteady)} ms over ${toWorkSteady.length}`,
    );
    console.log(`  of which relayed -> the engine's call reached the app: p50 ${pct(engineMs, 50)} ms, p99 ${pct(engineMs, 99)} ms, max ${Math.max(0, ...engineMs)} ms`);
    console.log(`  then the turn itself (the call until the turn is recorded; work, not idleness): p50 ${pct(turnWorkMs, 50)} ms, p99 ${pct(turnWorkMs, 99)} ms`);
    const loopLine = (xs: typeof loopBySecond) =>
      xs.length ? `per-second p99 median ${pct(xs.map((x) => x.p99), 50).toFixed(0)} ms, worst ${Math.max(...xs.map((x) => x.p99)).toFixed(0)} ms, max ${Math.max(...xs.map((x) => x.max)).toFixed(0)} ms` : "n/a";
    console.log(`engine: ${inproc ? "in this process (BENCH_ENGINE=inproc)" : "its own process"}`);
    console.log(`this process's event loop delay (${inproc ? "engine + " : ""}app + double + submissions): burst ${loopLine(loopBurst)}; after it ${loopLine(loopSteady)}`);
    console.log(`waiters left in line: ${leftWaiters}; load average ${loadavg().map((x) => x.toFixed(2)).join(" ")}`);
  } finally {
    proxy?.close();
    appServer?.close();
    await engine?.stop().catch(() => {});
    if (engineProc && engineProc.exitCode === null && engineProc.signalCode === null) {
      const exited = new Promise((r) => engineProc!.once("exit", r));
      engineProc.kill("SIGTERM"); // the CLI drains its journal into Postgres and stops
      await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000))]);
      if (engineProc.exitCode === null && engineProc.signalCode === null) engineProc.kill("SIGKILL");
    }
    await double?.stop().catch(() => {});
    await stack?.stop().catch(() => {});
    await rm(dataDir, { recursive: true, force: true }).catch(() => {});
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
