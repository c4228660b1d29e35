// npx tsx bench/pacing-sim.ts <trace.json> — replay a bench:night trace (BENCH_TRACE) through admission policies of the
// rate limiter, offline, in seconds instead of a 17-minute night. A script, not a test.
//
// The model: every task's chain of sonnet calls as the trace recorded them (input and output tokens per call, in
// order); each agent runs at most CONCURRENCY tasks at once, in submission order (content only as many drafts as its
// budget let run in the trace); a call asks the limiter (the SQL's rules: one request, its input tokens and the
// expected output — the agent's running mean — with tickets, priority, the order within a priority, the backfill),
// is told when to ask again if not admitted (and comes back WAKE_S later), runs for a latency drawn like the bench's,
// then the real output corrects the bucket (debt allowed); OVERHEAD_S of step work separates a task's calls. The
// limiter's buckets stand for the provider's (same limits, one minute of burst).
import { readFileSync } from "node:fs";

interface Trace {
  samples?: Array<{ t: number; in: number | null; out: number | null; st: Record<string, number> }>;
  limits: { requests_per_minute: number; input_tokens_per_minute: number; output_tokens_per_minute: number };
  calls: Array<{ at: number; scenario: string | null; turn: number | null; status: number; usage: { in: number; out: number } | null }>;
}

const CONCURRENCY = 12;
const OVERHEAD_S = Number(process.env.SIM_OVERHEAD_S ?? 0.35);
const WAKE_S = 0.04;

interface SimTask { id: number; agent: string; rank: number; calls: Array<{ in: number; out: number }> }

export interface Policy {
  name: string;
  /** Order within a priority: the ticket's first ask (today) or the task's submission (its age). */
  order: "ticket" | "task";
  /** Backfill: admit a call the buckets hold now ahead of the tickets when a bucket it uses is ≥ `full` of a minute and
   * the tickets ahead are set back by ≤ `delay_s` (or, with `scaled`, by ≤ `scaled` × how long the head waits anyway). */
  backfill: null | { full: number; delay_s: number; scaled?: number; overflow?: boolean; cap_s?: number };
}

function loadTasks(trace: Trace): SimTask[] {
  const by = new Map<string, Array<{ at: number; turn: number; in: number; out: number }>>();
  for (const c of trace.calls) {
    if (c.status !== 200 || !c.usage || !c.scenario) continue;
    const l = by.get(c.scenario) ?? [];
    l.push({ at: c.at, turn: c.turn ?? 0, in: c.usage.in, out: c.usage.out });
    by.set(c.scenario, l);
  }
  const tasks: SimTask[] = [];
  for (const [scenario, calls] of by) {
    const m = /^night-(\d+)$/.exec(scenario);
    if (!m) continue;
    const i = Number(m[1]);
    calls.sort((a, b) => a.turn - b.turn || a.at - b.at);
    tasks.push({ id: i, agent: i % 3 === 0 ? "research" : "content", rank: i, calls: calls.map((c) => ({ in: c.in, out: c.out })) });
  }
  return tasks.sort((a, b) => a.rank - b.rank);
}

export function simulate(tasks: SimTask[], limits: Trace["limits"], policy: Policy, seed = 7) {
  let s = seed;
  const rnd = () => ((s = (s * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
  const R = limits.requests_per_minute / 60, I = limits.input_tokens_per_minute / 60, O = limits.output_tokens_per_minute / 60;
  const b = { req: limits.requests_per_minute, in: limits.input_tokens_per_minute, out: limits.output_tokens_per_minute, t: 0 };
  const refill = (t: number) => {
    const dt = t - b.t;
    b.req = Math.min(limits.requests_per_minute, b.req + R * dt);
    b.in = Math.min(limits.input_tokens_per_minute, b.in + I * dt);
    b.out = Math.min(limits.output_tokens_per_minute, b.out + O * dt);
    b.t = t;
  };
  // Expected output per agent: running mean of the last 50 calls (a quarter of max_tokens before any: 1024 / 512).
  const hist = new Map<string, number[]>();
  const expected = (agent: string) => {
    const h = hist.get(agent);
    return h && h.length ? h.reduce((x, y) => x + y, 0) / h.length : agent === "content" ? 1024 : 512;
  };
  // Tickets: task id -> { key, in, out }
  const tickets = new Map<number, { enq: number; rank: number; in: number; out: number }>();
  const events: Array<{ t: number; kind: "ask" | "end"; task: SimTask; k: number; took?: number }> = [];
  const push = (e: (typeof events)[number]) => {
    let lo = 0, hi = events.length;
    while (lo < hi) { const mid = (lo + hi) >> 1; if (events[mid]!.t <= e.t) lo = mid + 1; else hi = mid; }
    events.splice(lo, 0, e);
  };
  const running = new Map<string, number>();
  const queued = new Map<string, SimTask[]>();
  for (const t of tasks) (queued.get(t.agent) ?? queued.set(t.agent, []).get(t.agent)!).push(t);
  const start = (agent: string, now: number) => {
    const q = queued.get(agent)!;
    while ((running.get(agent) ?? 0) < CONCURRENCY && q.length) {
      const t = q.shift()!;
      running.set(agent, (running.get(agent) ?? 0) + 1);
      push({ t: now + OVERHEAD_S, kind: "ask", task: t, k: 0 });
    }
  };
  for (const a of queued.keys()) start(a, 0);
  let end = 0, backfilled = 0, deferred = 0;
  let outFullWaiting = 0, inFullWaiting = 0, lastSample = 0;
  const ahead = (me: { enq: number; rank: number }, id: number) => {
    let req = 0, inn = 0, out = 0;
    for (const [tid, w] of tickets) {
      if (tid === id) continue;
      const before = policy.order === "task" ? w.rank < me.rank : w.enq < me.enq || (w.enq === me.enq && tid < id);
      if (before) (req += 1, inn += w.in, out += w.out);
    }
    return { req, inn, out };
  };
  while (events.length) {
    const e = events.shift()!;
    const now = e.t;
    // Sample: a bucket full while some ticket waits (capacity lost while work waited).
    if (tickets.size) {
      refill(now);
      const dt = now - lastSample;
      if (b.out >= 0.98 * limits.output_tokens_per_minute) outFullWaiting += dt;
      if (b.in >= 0.98 * limits.input_tokens_per_minute) inFullWaiting += dt;
    }
    lastSample = now;
    refill(now);
    const c = e.task.calls[e.k]!;
    if (e.kind === "end") {
      b.out -= c.out - e.took!; // the answer corrects what was taken
      const h = hist.get(e.task.agent) ?? [];
      h.push(c.out);
      if (h.length > 50) h.shift();
      hist.set(e.task.agent, h);
      end = Math.max(end, now);
      if (e.k + 1 < e.task.calls.length) push({ t: now + OVERHEAD_S, kind: "ask", task: e.task, k: e.k + 1 });
      else {
        running.set(e.task.agent, running.get(e.task.agent)! - 1);
        start(e.task.agent, now);
      }
      continue;
    }
    const vin = Math.min(c.in, limits.input_tokens_per_minute);
    const vout = Math.min(Math.max(1, Math.round(expected(e.task.agent))), limits.output_tokens_per_minute);
    const mine = tickets.get(e.task.id) ?? { enq: now, rank: e.task.rank, in: vin, out: vout };
    const a = ahead(mine, e.task.id);
    const fitsQueue = b.req >= a.req + 1 && b.in >= a.inn + vin && b.out >= a.out + vout;
    let ok = fitsQueue;
    if (!ok && policy.backfill && b.req >= 1 && b.in >= vin && b.out >= vout) {
      const f = policy.backfill;
      const headWait = Math.max(b.req < a.req ? (a.req - b.req) / R : 0, b.in < a.inn ? (a.inn - b.in) / I : 0, b.out < a.out ? (a.out - b.out) / O : 0);
      // overflow: a dimension whose bucket would fill up (and lose refill) while the tickets ahead wait anyway.
      const nearlyFull = f.overflow
        ? (b.in >= a.inn + vin && b.in + I * headWait >= limits.input_tokens_per_minute) || (b.out >= a.out + vout && b.out + O * headWait >= limits.output_tokens_per_minute)
        : (b.in >= a.inn + vin && b.in >= f.full * limits.input_tokens_per_minute) || (b.out >= a.out + vout && b.out >= f.full * limits.output_tokens_per_minute);
      let delay = 0;
      if (b.req < a.req + 1) delay = Math.max(delay, 1 / R);
      if (b.in < a.inn + vin) delay = Math.max(delay, vin / I);
      if (b.out < a.out + vout) delay = Math.max(delay, vout / O);
      let allowed = f.delay_s;
      if (f.scaled) {
        // How long the tickets ahead wait anyway: the longest of their dimensions' shortfalls.
        const wait = Math.max(b.req < a.req ? (a.req - b.req) / R : 0, b.in < a.inn ? (a.inn - b.in) / I : 0, b.out < a.out ? (a.out - b.out) / O : 0);
        allowed = Math.max(allowed, f.scaled * wait);
      }
      ok = nearlyFull && delay <= allowed;
      if (ok && f.cap_s !== undefined) {
        // Never push a ticket ahead past cap_s after it began waiting.
        let oldest = Infinity;
        for (const [tid, w] of tickets) if (tid !== e.task.id && (policy.order === "task" ? w.rank < mine.rank : w.enq < mine.enq)) oldest = Math.min(oldest, w.enq);
        if (oldest !== Infinity && now + headWait + delay - oldest > f.cap_s) ok = false;
      }
    }
    if (ok) {
      if (!fitsQueue) backfilled++;
      tickets.delete(e.task.id);
      b.req -= 1; b.in -= vin; b.out -= vout;
      const lat = (150 + rnd() * 300) * (e.task.agent === "content" ? 3 : 1) / 1000;
      push({ t: now + lat, kind: "end", task: e.task, k: e.k, took: vout });
    } else {
      deferred++;
      tickets.set(e.task.id, mine);
      const wait = Math.max(b.req < a.req + 1 ? (a.req + 1 - b.req) / R : 0, b.in < a.inn + vin ? (a.inn + vin - b.in) / I : 0, b.out < a.out + vout ? (a.out + vout - b.out) / O : 0);
      push({ t: now + Math.min(Math.max(wait, 0.05), 60) + WAKE_S, kind: "ask", task: e.task, k: e.k });
    }
  }
  const tin = tasks.reduce((x, t) => x + t.calls.reduce((y, c) => y + c.in, 0), 0);
  const tout = tasks.reduce((x, t) => x + t.calls.reduce((y, c) => y + c.out, 0), 0);
  const bound = Math.max(((tin - limits.input_tokens_per_minute) / limits.input_tokens_per_minute) * 60, ((tout - limits.output_tokens_per_minute) / limits.output_tokens_per_minute) * 60);
  return { policy: policy.name, makespan_s: end, bound_s: bound, ratio: end / bound, backfilled, deferred, out_full_waiting_s: outFullWaiting, in_full_waiting_s: inFullWaiting };
}

export const POLICIES: Policy[] = [
  { name: "FIFO by ticket, no backfill (before 20261201122000)", order: "ticket", backfill: null },
  { name: "FIFO by ticket + backfill 90 %, 1 s (main)", order: "ticket", backfill: { full: 0.9, delay_s: 1 } },
  { name: "task age + backfill 75 %, max(1 s, ½ wait), ≤ 300 s (20261202101000)", order: "task", backfill: { full: 0.75, delay_s: 1, scaled: 0.5, cap_s: 300 } },
  { name: "task age, no backfill", order: "task", backfill: null },
  { name: "task age + backfill 90 %, 1 s", order: "task", backfill: { full: 0.9, delay_s: 1 } },
  { name: "ticket + backfill 90 %, max(1 s, 0.25 × head's wait)", order: "ticket", backfill: { full: 0.9, delay_s: 1, scaled: 0.25 } },
  { name: "task age + backfill 90 %, max(1 s, 0.25 × head's wait)", order: "task", backfill: { full: 0.9, delay_s: 1, scaled: 0.25 } },
  ...(process.env.SIM_MORE ? ([
    { name: "task age + backfill 90 %, max(1 s, 0.5 × head's wait)", order: "task", backfill: { full: 0.9, delay_s: 1, scaled: 0.5 } },
    { name: "task age + backfill 75 %, max(1 s, 0.5 × head's wait)", order: "task", backfill: { full: 0.75, delay_s: 1, scaled: 0.5 } },
    { name: "ticket + backfill 90 %, max(1 s, 0.5 × head's wait)", order: "ticket", backfill: { full: 0.9, delay_s: 1, scaled: 0.5 } },
    { name: "ticket + backfill 75 %, max(1 s, 0.5 × head's wait)", order: "ticket", backfill: { full: 0.75, delay_s: 1, scaled: 0.5 } },
    { name: "ticket + backfill 50 %, max(1 s, 0.5 × head's wait)", order: "ticket", backfill: { full: 0.5, delay_s: 1, scaled: 0.5 } },
    { name: "ticket + backfill 75 %, 1 s (no scaling)", order: "ticket", backfill: { full: 0.75, delay_s: 1 } },
    { name: "ticket + backfill overflow, max(1 s, 0.5 × wait), cap 120 s", order: "ticket", backfill: { full: 0, delay_s: 1, scaled: 0.5, overflow: true, cap_s: 120 } },
    { name: "ticket + backfill 75 %, max(1 s, 0.5 × wait), cap 120 s", order: "ticket", backfill: { full: 0.75, delay_s: 1, scaled: 0.5, cap_s: 120 } },
    { name: "task age + backfill overflow, max(1 s, 0.5 × wait), cap 120 s", order: "task", backfill: { full: 0, delay_s: 1, scaled: 0.5, overflow: true, cap_s: 120 } },
    { name: "task age + backfill 75 %, max(1 s, 0.5 × wait), cap 120 s", order: "task", backfill: { full: 0.75, delay_s: 1, scaled: 0.5, cap_s: 120 } },
    { name: "task age + backfill 75 %, max(1 s, 0.5 × wait), cap 300 s", order: "task", backfill: { full: 0.75, delay_s: 1, scaled: 0.5, cap_s: 300 } },
    { name: "ticket + backfill 75 %, max(1 s, 0.5 × wait), cap 300 s", order: "ticket", backfill: { full: 0.75, delay_s: 1, scaled: 0.5, cap_s: 300 } },
  ] as Policy[]) : []),
];

if (process.argv[2]) {
  const trace = JSON.parse(readFileSync(process.argv[2], "utf8")) as Trace;
  const tasks = loadTasks(trace);
  // SIM_ORDER: the submission order (the task's age) — as recorded (interleaved research, content, outreach), every
  // content task first, every research task first, or shuffled: a policy must not depend on the bench's order.
  const order = process.env.SIM_ORDER ?? "recorded";
  let s = 99;
  const rnd = () => ((s = (s * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
  if (order === "content-first") tasks.sort((a, b) => (a.agent === b.agent ? a.id - b.id : a.agent === "content" ? -1 : 1));
  else if (order === "research-first") tasks.sort((a, b) => (a.agent === b.agent ? a.id - b.id : a.agent === "research" ? -1 : 1));
  else if (order === "shuffled") for (let i = tasks.length - 1; i > 0; i--) { const j = Math.floor(rnd() * (i + 1)); [tasks[i], tasks[j]] = [tasks[j]!, tasks[i]!]; }
  tasks.forEach((t, i) => (t.rank = i));
  console.log(`submission order: ${order}`);
  console.log(`${tasks.length} tasks with sonnet calls (${tasks.filter((t) => t.agent === "research").length} research, ${tasks.filter((t) => t.agent === "content").length} content), ${tasks.reduce((n, t) => n + t.calls.length, 0)} calls`);
  explain(trace);
  for (const p of POLICIES) {
    const r = simulate(tasks, trace.limits, p);
    console.log(`${p.name.padEnd(62)} makespan ${r.makespan_s.toFixed(1)} s / bound ${r.bound_s.toFixed(1)} s = ${r.ratio.toFixed(3)}; backfilled ${r.backfilled}, deferred ${r.deferred}; full while waiting in/out ${r.in_full_waiting_s.toFixed(0)} / ${r.out_full_waiting_s.toFixed(0)} s`);
  }
}

/** What the night was doing while a bucket sat full and tasks waited for the limit: mean tasks per agent and status
 * over those samples (running = in a model call, a tool or step work), and over the whole night for comparison. */
function explain(trace: Trace) {
  const S = trace.samples ?? [];
  if (!S.length) return;
  const full = (v: number | null, lim: number) => v !== null && v >= 0.98 * lim;
  const waiting = (x: (typeof S)[number]) => Object.keys(x.st).some((k) => k.endsWith(":waiting_rate_limit"));
  const groups: Record<string, Array<(typeof S)[number]>> = { "output full, tasks waiting": [], "input full, tasks waiting": [], "whole night": S };
  let prev = 0;
  const secs: Record<string, number> = {};
  for (const x of S) {
    const dt = (x.t - prev) / 1000;
    prev = x.t;
    if (waiting(x) && full(x.out, trace.limits.output_tokens_per_minute)) (groups["output full, tasks waiting"]!.push(x), (secs.out = (secs.out ?? 0) + dt));
    if (waiting(x) && full(x.in, trace.limits.input_tokens_per_minute)) (groups["input full, tasks waiting"]!.push(x), (secs.in = (secs.in ?? 0) + dt));
  }
  console.log(`samples ${S.length}; output full while waiting ${(secs.out ?? 0).toFixed(0)} s, input full while waiting ${(secs.in ?? 0).toFixed(0)} s`);
  for (const [name, xs] of Object.entries(groups)) {
    if (!xs.length) continue;
    const mean: Record<string, number> = {};
    for (const x of xs) for (const [k, v] of Object.entries(x.st)) mean[k] = (mean[k] ?? 0) + v / xs.length;
    const first = xs[0]!.t / 1000, last = xs[xs.length - 1]!.t / 1000;
    console.log(`  ${name} (${xs.length} samples, ${first.toFixed(0)}–${last.toFixed(0)} s): ${Object.entries(mean).filter(([k]) => !k.startsWith("outreach")).sort().map(([k, v]) => `${k} ${v.toFixed(1)}`).join(", ")}`);
  }
  // The night in minutes: per minute, sonnet tokens per agent as the double counted them, and the buckets' fullness.
  const perMin: Record<number, Record<string, number>> = {};
  for (const c of trace.calls) {
    if (c.status !== 200 || !c.usage || !c.scenario) continue;
    const m = Math.floor(c.at / 60_000);
    const i = Number(/^night-(\d+)$/.exec(c.scenario)?.[1] ?? -1);
    const a = i < 0 ? "batch" : i % 3 === 0 ? "research" : "content";
    const o = (perMin[m] ??= {});
    o[`${a}.in`] = (o[`${a}.in`] ?? 0) + c.usage.in;
    o[`${a}.out`] = (o[`${a}.out`] ?? 0) + c.usage.out;
  }
  console.log("  minute: research in/out, content in/out (tokens)");
  for (const [m, o] of Object.entries(perMin)) console.log(`  ${m.padStart(3)}: ${o["research.in"] ?? 0}/${o["research.out"] ?? 0}  ${o["content.in"] ?? 0}/${o["content.out"] ?? 0}`);
}
