// npm run bench:night — a night of work on the real parts, with pacing on and off, side by side.
//
// Each mode runs in its own child process (the app reads NIGHTSHIFT_PACING once) with its own embedded Supabase
// stack, the local Inngest engine on the real clock, the app's Inngest functions served by the real SDK over HTTP
// (the integration tests' way: no `next build`), and the offline Claude double with rate limits and scaled-down
// latencies. The workload (BENCH_TASKS, default 60; the issue's full night is 300):
//   research  (1/3) 5–8 turns, each but the last a web_fetch of a local page (the context grows every turn)
//   content   (1/3) one draft, approved by this script as soon as it is pending; its budget binds
//   outreach  (1/3) one email (dry run), on claude-haiku-4-5, which is not rate limited
//   + BENCH_BATCH (default 6) research tasks in mode "batch" (the batch saving)
// claude-sonnet-4-6 (research and content) gets rate limits that bind; content's daily cap is set so that it binds.
// Printed per mode: makespan against the rate-limit lower bound, 429s, spend against each cap (overspend), tasks
// parked for money (and whether any was parked by settled spend that still left room), the batch saving.
//
//   npm run bench:night                      BENCH_TASKS=60
//   BENCH_TASKS=300 npm run bench:night      the full night (long on a small machine)
import { spawn } from "node:child_process";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { mkdtemp, rm } from "node:fs/promises";
import { cpus, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const TASKS = Number(process.env.BENCH_TASKS ?? 60);
const BATCH = Number(process.env.BENCH_BATCH ?? 6);
const SONNET = "claude-sonnet-4-6";
/** Rate limits of claude-sonnet-4-6 in the double (and nothing configured in Nightshift: calibrated from headers). */
const LIMITS = { requests_per_minute: Number(process.env.BENCH_RPM ?? 120), input_tokens_per_minute: Number(process.env.BENCH_ITPM ?? 60_000), output_tokens_per_minute: Number(process.env.BENCH_OTPM ?? 12_000) };
/** Scaled-down latency of one model call (ms). */
const LATENCY = [150, 450] as const;
const TIMEOUT_MS = Number(process.env.BENCH_TIMEOUT_S ?? 1200) * 1000;
/** BENCH_TRACE=<file>: also write the night's trace (every sonnet call, each task's agent and status over time, the
 * double's bucket levels per sample) for bench/pacing-sim.ts and for finding where the time above the bound goes. */
const TRACE = process.env.BENCH_TRACE;

interface Report {
  mode: "on" | "off";
  tasks: number;
  terminal: Record<string, number>;
  parked_at_end: number;
  makespan_s: number;
  bound_s: number;
  sonnet: { calls: number; input_tokens: number; output_tokens: number };
  calls: number;
  http_429: number;
  spend: Array<{ agent: string; settled_micros: number; estimated_micros: number; committed_micros: number; cap_micros: number; overspend_micros: number; windows: number }>;
  parked: { in_flight_waits: number; settled_waits: number; settled_waits_with_room: number; parked_tasks: number; parked_s_total: number; parked_s_max: number };
  rate_waits: number;
  /** The limit named by each paced wait (requests, input tokens, output tokens, retry-after, queue). */
  rate_wait_dims: Record<string, number>;
  batch: { tasks: number; paid_micros: number; full_price_micros: number; saving_micros: number };
  /** Where the sonnet limiter's time went (rate_limits counters; pacing on only). */
  limiter: { admitted: number; deferred: number; backfilled: number; trimmed_input: number; trimmed_output: number; excess_output: number; admitted_after_wait: number; wake_late_ms: number; settles_observed: number; settle_lag_ms: number } | null;
  /** Seconds the double's sonnet buckets sat full (capacity refilling into a full bucket is lost), sampled by the
   * watch loop: in all, and while some task waited for the rate limit (the limiter held work back while the provider
   * had room in that dimension). */
  idle: { input_full_s: number; output_full_s: number; input_full_while_waiting_s: number; output_full_while_waiting_s: number; last_rate_wait_s: number };
}

// ---------------------------------------------------------------------------------------------------------------
// Child: one mode.
async function runMode(mode: "on" | "off"): Promise<Report> {
  const dataDir = await mkdtemp(join(tmpdir(), "ns-night-"));
  const { startDataStack } = await import("../local/data-stack");
  const { startClaudeDouble, scenarioMarker } = await import("../local/claude/server");
  const { startEngine } = await import("../local/engine/index");
  const stack = await startDataStack({ dataDir, persistent: false });
  const double = await startClaudeDouble({ rateLimits: { [SONNET]: LIMITS }, batchDelayMs: 2_000, maxCallBodies: 0 });
  const pages = createServer((req, res) => {
    const n = Number((req.url ?? "/0").slice(1)) || 0;
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    // ~2.5 KB of text per page: the research context grows by ~600 tokens a turn.
    res.end(`<html><head><title>Source ${n}</title></head><body>${Array.from({ length: 24 }, (_, i) => `<p>Finding ${n}.${i}: durable steps checkpoint work so a crash resumes where it stopped; budgets cap spend per agent per day.</p>`).join("")}</body></html>`);
  });
  await new Promise<void>((r) => pages.listen(0, "127.0.0.1", () => r()));
  const pagesUrl = `http://127.0.0.1:${(pages.address() as AddressInfo).port}`;
  const engine = await startEngine({ databaseUrl: stack.databaseUrl, port: 0 });
  Object.assign(process.env, {
    SUPABASE_URL: stack.supabaseUrl,
    SUPABASE_SECRET_KEY: stack.secretKey,
    ANTHROPIC_BASE_URL: double.url,
    INNGEST_DEV: engine.url,
    NIGHTSHIFT_FETCH_ALLOW: "127.0.0.1",
    NIGHTSHIFT_PACING: mode,
  });
  const { inngest } = await import("../inngest/client");
  const { functions } = await import("../inngest/index");
  const { serve } = await import("inngest/node");
  const { submitTask } = await import("../lib/tasks/submit");
  const { decideApproval, listPendingApprovals } = await import("../lib/approvals");
  const { createAdminClient } = await import("../lib/db/admin");
  const pg = (await import("pg")).default;
  const db = createAdminClient({ url: stack.supabaseUrl, secretKey: stack.secretKey });
  const app = createServer(serve({ client: inngest, functions }));
  app.keepAliveTimeout = 30_000;
  await new Promise<void>((r) => app.listen(0, "127.0.0.1", () => r()));
  await engine.sync(`http://127.0.0.1:${(app.address() as AddressInfo).port}/api/inngest`);
  const sql = new pg.Pool({ connectionString: stack.databaseUrl, max: 2 });
  sql.on("error", () => {});

  // Agents: enough concurrency for a night's queue; content's cap binds (about half its drafts fit in one day).
  const perAgent = Math.max(1, Math.floor(TASKS / 3));
  await sql.query(`update public.agents set concurrency = 12, budget_timezone = 'UTC'`);
  await sql.query(`update public.agents set daily_budget_micros = $1 where id = 'content'`, [Math.round(perAgent * 0.5 * 20_000) + 62_000]);
  // Only content's cap binds: research and outreach get room for the whole night (research's seeded $2 bound too
  // at 300 tasks and parked a third of the night).
  await sql.query(`update public.agents set daily_budget_micros = 50000000 where id in ('research', 'outreach')`);

  // The workload, deterministic.
  let seed = 42;
  const rnd = () => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
  const latency = () => Math.round(LATENCY[0] + rnd() * (LATENCY[1] - LATENCY[0]));
  const jobs: Array<{ agent: string; prompt: string; mode: "now" | "batch" }> = [];
  for (let i = 0; i < TASKS; i++) {
    const agent = (["research", "content", "outreach"] as const)[i % 3]!;
    const scenario = `night-${i}`;
    if (agent === "research") {
      const turns = 5 + Math.floor(rnd() * 4);
      double.script(scenario, [
        ...Array.from({ length: turns - 1 }, (_, t) => ({ tool_use: { name: "web_fetch", input: { url: `${pagesUrl}/${i * 10 + t}` } }, latency_ms: latency(), usage: { output_tokens: 120 } })),
        { text: `Findings for question ${i}: durable execution resumes from checkpoints.`, latency_ms: latency(), usage: { output_tokens: 600 } },
      ]);
    } else if (agent === "content") {
      double.script(scenario, [{ text: `Draft ${i}: how our agents work overnight.`, latency_ms: latency() * 3, usage: { output_tokens: 1_100 } }]);
    } else {
      double.script(scenario, [
        { tool_use: { name: "send_email", input: { to: [`reader${i}@example.com`], subject: "Tonight's report", text: "All done." } }, latency_ms: latency() },
        { text: "Sent.", latency_ms: latency(), usage: { output_tokens: 40 } },
      ]);
    }
    jobs.push({ agent, prompt: `${scenarioMarker(scenario)} Task ${i} for the ${agent} agent.`, mode: "now" });
  }
  for (let i = 0; i < BATCH; i++) {
    const scenario = `night-batch-${i}`;
    double.script(scenario, [{ text: `Batch findings ${i}.`, usage: { output_tokens: 600 } }]);
    jobs.push({ agent: "research", prompt: `${scenarioMarker(scenario)} Batch research ${i}.`, mode: "batch" });
  }

  const started = Date.now();
  const ids: string[] = [];
  for (const j of jobs) ids.push((await submitTask(db, { agent: j.agent, prompt: j.prompt, mode: j.mode }, null, null)).taskId);
  const batchIds = new Set(ids.slice(TASKS));

  // Watch: approve drafts as they come, track money waits (from status_reason), stop when every task has ended or
  // is parked for settled spend (which waits for the next window: hours away).
  const parkedSince = new Map<string, number>();
  const parkedTotal = new Map<string, number>();
  const seenWaits = new Set<string>();
  const rateWaitDims: Record<string, number> = {};
  let inFlightWaits = 0, settledWaits = 0, settledWithRoom = 0, rateWaits = 0;
  let finishedAt = started;
  const TERMINAL = new Set(["completed", "failed", "stopped", "rejected", "cancelled"]);
  let rows: Array<{ id: string; agent_id: string; status: string; status_reason: string | null; updated_at: string }> = [];
  const samples: Array<{ t: number; in: number | null; out: number | null; st: Record<string, number> }> = [];
  const idle = { inFull: 0, outFull: 0, inFullWaiting: 0, outFullWaiting: 0, lastRateWait: started, sampledAt: started };
  for (;;) {
    for (const a of await listPendingApprovals(db, 200)) await decideApproval(db, a.id, { decision: "approve" }, "bench", "api");
    ({ rows } = await sql.query(`select id, agent_id, status::text, status_reason, updated_at::text from public.tasks`));
    const now = Date.now();
    for (const r of rows) {
      if (r.status === "waiting_budget" && r.status_reason) {
        const key = `${r.id}:${r.updated_at}`;
        if (!seenWaits.has(key)) {
          seenWaits.add(key);
          if (r.status_reason.startsWith("waiting for calls in flight")) inFlightWaits++;
          else {
            settledWaits++;
            // "$S settled + $F in flight of X's $C daily budget; the next call needs up to $N"
            const m = /\$([\d.]+) settled \+ \$([\d.]+) in flight of .*'s \$([\d.]+) daily budget; the next call needs up to \$([\d.]+)/.exec(r.status_reason);
            if (m && Number(m[1]) + Number(m[4]) <= Number(m[3])) settledWithRoom++;
          }
        }
        if (!parkedSince.has(r.id)) parkedSince.set(r.id, now);
      } else if (parkedSince.has(r.id)) {
        parkedTotal.set(r.id, (parkedTotal.get(r.id) ?? 0) + now - parkedSince.get(r.id)!);
        parkedSince.delete(r.id);
      }
      if (r.status === "waiting_rate_limit") {
        const key = `${r.id}:${r.updated_at}:rl`;
        if (!seenWaits.has(key)) {
          seenWaits.add(key);
          rateWaits++;
          const dim = /rate limit \(([^)]+)\)/.exec(r.status_reason ?? "")?.[1] ?? (r.status_reason?.includes("(429)") ? "429" : "other");
          rateWaitDims[dim] = (rateWaitDims[dim] ?? 0) + 1;
        }
      }
    }
    // The double's buckets: time a bucket sat (nearly) full is capacity lost.
    const lv = double.rateLimits.levels(SONNET);
    const waitingRl = rows.some((r) => r.status === "waiting_rate_limit");
    if (waitingRl) idle.lastRateWait = now;
    const dt = now - idle.sampledAt;
    idle.sampledAt = now;
    if (TRACE) {
      // Tasks per agent and status (a running task may be in a model call, a tool or its step overhead).
      const st: Record<string, number> = {};
      for (const r of rows) if (!TERMINAL.has(r.status)) st[`${r.agent_id}:${r.status}`] = (st[`${r.agent_id}:${r.status}`] ?? 0) + 1;
      samples.push({ t: now - started, in: lv?.input_tokens?.available ?? null, out: lv?.output_tokens?.available ?? null, st });
    }
    if (lv?.input_tokens && lv.input_tokens.available >= 0.98 * lv.input_tokens.limit) (idle.inFull += dt, waitingRl && (idle.inFullWaiting += dt));
    if (lv?.output_tokens && lv.output_tokens.available >= 0.98 * lv.output_tokens.limit) (idle.outFull += dt, waitingRl && (idle.outFullWaiting += dt));
    const open = rows.filter((r) => !TERMINAL.has(r.status));
    const parkedForWindow = open.filter((r) => r.status === "waiting_budget" && r.status_reason?.startsWith("daily budget spent"));
    if (rows.filter((r) => TERMINAL.has(r.status)).length > 0) finishedAt = Math.max(finishedAt, ...rows.filter((r) => TERMINAL.has(r.status)).map((r) => Date.parse(r.updated_at)));
    if (open.length === parkedForWindow.length && rows.length === jobs.length) break;
    if (now - started > TIMEOUT_MS) {
      console.error(`[night:${mode}] timed out with ${open.length} tasks open: ${JSON.stringify(count(open.map((r) => r.status)))}`);
      break;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  const now = Date.now();
  for (const [id, since] of parkedSince) parkedTotal.set(id, (parkedTotal.get(id) ?? 0) + now - since);

  // Figures from the ledger and the double.
  const sonnetCalls = double.calls({ kind: "messages", model: SONNET });
  const ok = sonnetCalls.filter((c) => c.status === 200 && c.usage);
  const itok = ok.reduce((s, c) => s + c.usage!.input_tokens + c.usage!.cache_creation_input_tokens, 0);
  const otok = ok.reduce((s, c) => s + c.usage!.output_tokens, 0);
  // A bucket starts full (one minute's worth), then refills at the limit per minute.
  const bound = Math.max(
    (Math.max(0, ok.length - LIMITS.requests_per_minute) / LIMITS.requests_per_minute) * 60,
    (Math.max(0, itok - LIMITS.input_tokens_per_minute) / LIMITS.input_tokens_per_minute) * 60,
    (Math.max(0, otok - LIMITS.output_tokens_per_minute) / LIMITS.output_tokens_per_minute) * 60,
  );
  const { rows: spend } = await sql.query(
    // Overspend per window (a run that crosses the agents' midnight opens a second window, with its own cap).
    `select w.agent_id, sum(w.settled_micros)::bigint s, sum(w.estimated_micros)::bigint e, sum(w.settled_micros + w.reserved_micros)::bigint c,
            max(a.daily_budget_micros)::bigint cap, sum(greatest(w.settled_micros + w.reserved_micros - w.cap_micros, 0))::bigint overspend, count(*)::int windows
       from public.budget_windows w join public.agents a on a.id = w.agent_id group by w.agent_id order by 1`,
  );
  const { rows: batchRows } = await sql.query(`select coalesce(sum(cost_micros), 0)::bigint paid from public.tasks where id = any($1::uuid[])`, [[...batchIds]]);
  const paid = Number(batchRows[0].paid);
  const { rows: lim } = await sql.query(
    `select admitted, deferred, backfilled, trimmed_input, trimmed_output, excess_output, admitted_after_wait, wake_late_ms, settles_observed, settle_lag_ms from public.rate_limits where model = $1`,
    [SONNET],
  );
  const limiter = lim[0] ? (Object.fromEntries(Object.entries(lim[0]).map(([k, v]) => [k, Number(v)])) as Report["limiter"]) : null;
  const report: Report = {
    mode,
    tasks: jobs.length,
    terminal: count(rows.filter((r) => TERMINAL.has(r.status)).map((r) => r.status)),
    parked_at_end: rows.filter((r) => r.status === "waiting_budget").length,
    makespan_s: (finishedAt - started) / 1000,
    bound_s: bound,
    sonnet: { calls: ok.length, input_tokens: itok, output_tokens: otok },
    calls: double.calls({ kind: "messages" }).length,
    http_429: double.calls({ kind: "messages", status: 429 }).length,
    spend: spend.map((s) => ({ agent: s.agent_id, settled_micros: Number(s.s), estimated_micros: Number(s.e), committed_micros: Number(s.c), cap_micros: Number(s.cap), overspend_micros: Number(s.overspend), windows: Number(s.windows) })),
    parked: {
      in_flight_waits: inFlightWaits,
      settled_waits: settledWaits,
      settled_waits_with_room: settledWithRoom,
      parked_tasks: parkedTotal.size,
      parked_s_total: [...parkedTotal.values()].reduce((s, v) => s + v, 0) / 1000,
      parked_s_max: Math.max(0, ...parkedTotal.values()) / 1000,
    },
    rate_waits: rateWaits,
    rate_wait_dims: rateWaitDims,
    batch: { tasks: batchIds.size, paid_micros: paid, full_price_micros: paid * 2, saving_micros: paid },
    limiter,
    idle: { input_full_s: idle.inFull / 1000, output_full_s: idle.outFull / 1000, input_full_while_waiting_s: idle.inFullWaiting / 1000, output_full_while_waiting_s: idle.outFullWaiting / 1000, last_rate_wait_s: (idle.lastRateWait - started) / 1000 },
  };

  if (TRACE) {
    const { writeFile } = await import("node:fs/promises");
    const { rows: tasks } = await sql.query(`select id, agent_id, status::text, priority, created_at::text, updated_at::text from public.tasks`);
    await writeFile(`${TRACE}.${mode}.json`, JSON.stringify({
      started, limits: LIMITS, tasks,
      calls: sonnetCalls.map((c) => ({ at: Date.parse(c.at) - started, scenario: c.scenario, turn: c.turn, status: c.status, usage: c.usage && { in: c.usage.input_tokens + c.usage.cache_creation_input_tokens, out: c.usage.output_tokens } })),
      samples,
    }));
  }
  await sql.end();
  await new Promise<void>((r) => (app.closeAllConnections(), app.close(() => r())));
  await engine.stop();
  await double.stop();
  await new Promise<void>((r) => pages.close(() => r()));
  await stack.stop();
  await rm(dataDir, { recursive: true, force: true });
  return report;
}

function count(xs: string[]): Record<string, number> {
  const o: Record<string, number> = {};
  for (const x of xs) o[x] = (o[x] ?? 0) + 1;
  return o;
}

// ---------------------------------------------------------------------------------------------------------------
// Parent: both modes, one after the other (two cores: running them at once would measure each other).
async function main() {
  const childMode = process.env.BENCH_NIGHT_MODE as "on" | "off" | undefined;
  if (childMode) {
    const r = await runMode(childMode);
    process.stdout.write(`REPORT ${JSON.stringify(r)}\n`);
    process.exit(0);
  }
  console.log(`bench:night — ${TASKS} tasks + ${BATCH} batch, ${cpus().length} CPUs (${cpus()[0]?.model}), ${Math.round(totalmem() / 2 ** 30)} GB`);
  console.log(`claude-sonnet-4-6 limits in the double: ${JSON.stringify(LIMITS)}; call latency ${LATENCY[0]}–${LATENCY[1]} ms`);
  const reports: Report[] = [];
  const modes = (process.env.BENCH_MODES ?? "on,off").split(",").filter((m): m is "on" | "off" => m === "on" || m === "off");
  for (const mode of modes) {
    const out = await new Promise<string>((resolve, reject) => {
      const child = spawn(process.execPath, ["--conditions=react-server", "--import", "tsx", fileURLToPath(import.meta.url)], {
        env: { ...process.env, BENCH_NIGHT_MODE: mode, NEXT_TELEMETRY_DISABLED: "1" },
        stdio: ["ignore", "pipe", "inherit"],
      });
      let buf = "";
      child.stdout.on("data", (d) => (buf += d));
      child.on("exit", (code) => (code === 0 ? resolve(buf) : reject(new Error(`mode ${mode} exited ${code}`))));
    });
    const line = out.split("\n").find((l) => l.startsWith("REPORT "));
    if (!line) throw new Error(`mode ${mode}: no report`);
    reports.push(JSON.parse(line.slice(7)) as Report);
  }
  const usd = (m: number) => `$${(m / 1e6).toFixed(4)}`;
  const row = (name: string, f: (r: Report) => string) => console.log(`${name.padEnd(44)} ${reports.map((r) => f(r).padEnd(28)).join(" ")}`);
  row("pacing", (r) => r.mode);
  row("tasks ended", (r) => JSON.stringify(r.terminal));
  row("parked for the next window at the end", (r) => String(r.parked_at_end));
  row("makespan (s)", (r) => r.makespan_s.toFixed(1));
  row("rate-limit bound (s) [sonnet tokens ÷ TPM]", (r) => r.bound_s.toFixed(1));
  row("makespan ÷ bound", (r) => (r.bound_s > 0 ? (r.makespan_s / r.bound_s).toFixed(2) : "n/a"));
  row("sonnet calls / input / output tokens", (r) => `${r.sonnet.calls} / ${r.sonnet.input_tokens} / ${r.sonnet.output_tokens}`);
  row("429s received / calls", (r) => `${r.http_429} / ${r.calls} (${((100 * r.http_429) / Math.max(1, r.calls)).toFixed(1)} %)`);
  row("waits for the rate limit (paced)", (r) => String(r.rate_waits));
  row("  by the limit that bound", (r) => JSON.stringify(r.rate_wait_dims));
  for (const a of reports[0]!.spend.map((s) => s.agent)) {
    row(`${a}: committed / cap (overspend)`, (r) => {
      const s = r.spend.find((x) => x.agent === a);
      return s ? `${usd(s.committed_micros)} / ${usd(s.cap_micros)}${s.windows > 1 ? ` × ${s.windows} windows` : ""} (${usd(s.overspend_micros)})` : "-";
    });
  }
  row("money waits: in flight / settled", (r) => `${r.parked.in_flight_waits} / ${r.parked.settled_waits}`);
  row("settled waits with room left (must be 0)", (r) => String(r.parked.settled_waits_with_room));
  row("tasks parked, total s / max s", (r) => `${r.parked.parked_tasks}, ${r.parked.parked_s_total.toFixed(1)} / ${r.parked.parked_s_max.toFixed(1)}`);
  row("limiter: admitted (backfilled) / deferred", (r) => (r.limiter ? `${r.limiter.admitted} (${r.limiter.backfilled}) / ${r.limiter.deferred}` : "-"));
  row("  tokens cut by the provider's remaining in/out", (r) => (r.limiter ? `${r.limiter.trimmed_input} / ${r.limiter.trimmed_output} (${((60 * r.limiter.trimmed_input) / LIMITS.input_tokens_per_minute).toFixed(1)} s / ${((60 * r.limiter.trimmed_output) / LIMITS.output_tokens_per_minute).toFixed(1)} s)` : "-"));
  row("  output beyond the expectation (debt)", (r) => (r.limiter ? `${r.limiter.excess_output} tokens (${((60 * r.limiter.excess_output) / LIMITS.output_tokens_per_minute).toFixed(1)} s)` : "-"));
  row("  settlements: mean lag answer → settle", (r) => (r.limiter ? `${(r.limiter.settle_lag_ms / Math.max(1, r.limiter.settles_observed)).toFixed(0)} ms × ${r.limiter.settles_observed} (≈ ${((r.limiter.settle_lag_ms / 1000) * LIMITS.input_tokens_per_minute / 60).toFixed(0)} input tokens of refill)` : "-"));
  row("double's buckets full: input / output (s)", (r) => `${r.idle.input_full_s.toFixed(1)} / ${r.idle.output_full_s.toFixed(1)}`);
  row("  of which while tasks waited for the limit", (r) => `${r.idle.input_full_while_waiting_s.toFixed(1)} / ${r.idle.output_full_while_waiting_s.toFixed(1)}`);
  row("last rate-limit wait at (s) / makespan", (r) => `${r.idle.last_rate_wait_s.toFixed(1)} / ${r.makespan_s.toFixed(1)}`);
  row("  woken after a wait: n, mean lateness", (r) => (r.limiter ? `${r.limiter.admitted_after_wait}, ${(r.limiter.wake_late_ms / Math.max(1, r.limiter.admitted_after_wait)).toFixed(0)} ms` : "-"));
  row("batch: tasks, paid, full price, saving", (r) => `${r.batch.tasks}, ${usd(r.batch.paid_micros)}, ${usd(r.batch.full_price_micros)}, ${usd(r.batch.saving_micros)}`);
  console.log(`REPORTS ${JSON.stringify(reports)}`);
}

await main();
