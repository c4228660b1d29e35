// npm run bench:submit-ab — interleaved before/after of the cuts in a POST's CPU, on one data stack in one sitting (so
// both sides see the same machine load, which on a shared box moves more than the cuts do). CPU per request from /proc,
// per component; medians over the rounds. AB_ROUNDS (4), AB_MS (5000: each closed loop of 16 clients).
//
// Session 7 (the default, AB=s7): two `next start` from one build (`.next-bench`), the event API stubbed (no runs):
//   - "after": as built — the app's Supabase URL is the stack's `/rest/v1` proxy (local/db/rest-proxy.ts: bytes passed
//     through, only the request line rewritten) and submitTask calls submit_task directly (lib/db/direct-rpc.ts);
//   - "before": the same build with NIGHTSHIFT_DIRECT_RPC=off (the call through supabase-js) and its Supabase URL on
//     the old proxy (bench/lib/http-rest-proxy.ts: a Node http server re-issuing each request) on the same PostgREST;
//   closed loops health then POST, order alternating; and, straight to PostgREST through the stack's proxy,
//   rpc/submit_task (as migrated) against rpc/submit_task_before (made here from 20261130121000's definition, with
//   outbox_record in LANGUAGE sql as before 20261204100000: the function before session 7), alternating; and
//   rpc/submit_task through the old proxy (the proxies' difference per call).
// Session 6 (AB=s6): the proxy.ts matcher (a copy of the build with the old matcher) and PostgREST's JWT cache.
// Needs `.next-bench` (run `npm run bench:submit` once, or `npm run bench:submit-ab -- --build`).
import { spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { cpSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { createApiKey, parseApiKey } from "../lib/api-keys";
import { startDataStack } from "../local/data-stack";
import { asAuthenticator, startPostgrest } from "../local/db/postgrest";
import { startHttpRestProxy } from "./lib/http-rest-proxy";
import type { LoadJob, LoadJobSpec, LoadReply } from "./lib/load-child";
import type { LoadResult, RequestSpec } from "./lib/load";
import { cpuBetween, snapshot } from "./lib/procs";
import { adminClient, build, DIST_DIR, root, startNext, type NextServer } from "./lib/next-app";

const ROUNDS = Number(process.env.AB_ROUNDS ?? 4);
const MS = Number(process.env.AB_MS ?? 5000);
const MODE = process.env.AB === "s6" ? "s6" : "s7";
const C = 16;

class Load {
  n = 1;
  pending = new Map<number, (r: LoadResult) => void>();
  constructor(readonly proc: ChildProcess) {
    proc.on("message", (m: LoadReply | { ready: true }) => {
      if ("ready" in m) return;
      const p = this.pending.get(m.id);
      this.pending.delete(m.id);
      if ("error" in m) throw new Error(m.error);
      p?.(m.result);
    });
  }
  run(job: LoadJobSpec): Promise<LoadResult> {
    const id = this.n++;
    return new Promise((r) => {
      this.pending.set(id, r);
      this.proc.send({ ...job, id } satisfies LoadJob);
    });
  }
}

if (process.argv.includes("--build")) build();
// Session 6: the same build with the matcher proxy.ts had before: the two exact-path exclusions taken out of the
// compiled regexp.
const BEFORE_DIR = `${DIST_DIR}-before`;
if (MODE === "s6") {
  rmSync(join(root, BEFORE_DIR), { recursive: true, force: true });
  cpSync(join(root, DIST_DIR), join(root, BEFORE_DIR), { recursive: true });
  const f = join(root, BEFORE_DIR, "server", "functions-config-manifest.json");
  const text = readFileSync(f, "utf8");
  const old = text.replaceAll("|api\\\\/tasks$|api\\\\/health$", "").replaceAll("|api/tasks$|api/health$", "");
  if (old === text) throw new Error(`${f}: the matcher has no exclusion of /api/tasks and /api/health to take out (an old build?)`);
  writeFileSync(f, old);
}

console.log(`[ab] ${MODE}: ${ROUNDS} rounds of ${MS} ms closed loops, ${C} clients; load average ${loadavg().map((x) => x.toFixed(2)).join(" ")}`);
const dataDir = await mkdtemp(join(tmpdir(), "ab-submit-"));
const stack = await startDataStack({ dataDir, persistent: false });
const stubCount = { batches: 0, events: 0 };
const stub = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", () => {
    let n = 1;
    try {
      const b = JSON.parse(Buffer.concat(chunks).toString()) as unknown;
      n = Array.isArray(b) ? b.length : 1;
    } catch {}
    stubCount.batches++;
    stubCount.events += n;
    const t = JSON.stringify({ ids: Array.from({ length: n }, () => randomUUID()), status: 200 });
    res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(t) });
    res.end(t);
  });
});
await new Promise<void>((r) => stub.listen(0, "127.0.0.1", () => r()));
const stubUrl = `http://127.0.0.1:${(stub.address() as AddressInfo).port}`;
const env = (o: { dist?: string; supabaseUrl?: string; extra?: Record<string, string> }) => ({
  SUPABASE_URL: o.supabaseUrl ?? stack.supabaseUrl,
  SUPABASE_SECRET_KEY: stack.secretKey,
  ANTHROPIC_BASE_URL: "http://127.0.0.1:9",
  ANTHROPIC_API_KEY: "",
  INNGEST_DEV: stubUrl,
  NIGHTSHIFT_DIST_DIR: o.dist ?? DIST_DIR,
  ...o.extra,
});
const cleanups: (() => Promise<unknown> | void)[] = [];
let before: NextServer, after: NextServer;
let oldProxyUrl = "";
let noCache: Awaited<ReturnType<typeof startPostgrest>> | undefined;
if (MODE === "s6") {
  noCache = await startPostgrest({ databaseUrl: asAuthenticator(stack.databaseUrl), jwtSecret: stack.jwtSecret, jwtCacheMaxLifetimeS: 0 });
  const n = noCache;
  cleanups.push(() => n.stop());
  before = await startNext(env({ dist: BEFORE_DIR }));
  after = await startNext(env({}));
} else {
  const oldProxy = await startHttpRestProxy(stack.postgrestSocket);
  oldProxyUrl = oldProxy.url;
  cleanups.push(() => oldProxy.close());
  before = await startNext(env({ supabaseUrl: oldProxy.url, extra: { NIGHTSHIFT_DIRECT_RPC: "off" } }));
  after = await startNext(env({}));
}
for (const [n, s] of [["before", before], ["after", after]] as const) {
  const r = await fetch(`${s.url}/api/health`);
  console.log(`${n}: /api/health CSP = ${JSON.stringify(r.headers.get("content-security-policy"))}`);
}
const key = await createApiKey(adminClient(stack.supabaseUrl, stack.secretKey), "ab");
const loadProc = spawn(process.execPath, ["--import", "tsx", "bench/lib/load-child.ts"], { cwd: root, stdio: ["ignore", "inherit", "inherit", "ipc"] });
await new Promise((r) => loadProc.once("message", r));
const load = new Load(loadProc);

const health = (u: string): RequestSpec => ({ url: `${u}/api/health`, method: "GET", expectStatus: 200, timeoutMs: 5000 });
const post = (u: string): RequestSpec => ({
  url: `${u}/api/tasks`,
  method: "POST",
  headers: { authorization: `Bearer ${key.key}`, "content-type": "application/json" },
  bodyTemplate: JSON.stringify({ agent: "research", prompt: "ab %i" }),
  expectStatus: 202,
  timeoutMs: 5000,
});
const service = { apikey: stack.secretKey, authorization: `Bearer ${stack.secretKey}`, "content-type": "application/json" };
const rpc = (u: string): RequestSpec => ({
  url: `${u}/rest/v1/rpc/api_key_hash`,
  method: "POST",
  headers: service,
  bodyTemplate: JSON.stringify({ p_key_id: key.id }),
  expectStatus: 200,
});
// submit_task as the app calls it (a key, no idempotency key), straight to PostgREST.
const presented = parseApiKey(key.key)!;
const submitRpc = (fn: string, base = stack.supabaseUrl): RequestSpec => ({
  url: `${base}/rest/v1/rpc/${fn}`,
  method: "POST",
  headers: service,
  bodyTemplate: JSON.stringify({
    p_key_id: presented.id, p_key_hash: presented.hash, p_agent_id: "research", p_prompt: "ab rpc %i", p_input: null,
    p_priority: 0, p_mode: null, p_require_approval: false, p_callback_url: null, p_idempotency_key: null, p_request_hash: "ab",
  }),
  expectStatus: 200,
  timeoutMs: 5000,
});
if (MODE === "s7") await createSubmitTaskBefore(stack.databaseUrl);

interface Figures { rate: number; next: number; pgrst: number; pg: number; proxy: number; all: number }
let seq = 0;
const measure = async (name: string, spec: RequestSpec, pgid: number | undefined): Promise<Figures> => {
  const comps = { benchPid: process.pid, nextPgid: pgid, loadPid: loadProc.pid };
  const l0 = loadavg()[0]!;
  const a = snapshot(comps);
  const s0 = { ...stubCount };
  const r = await load.run({ kind: "closed", spec, concurrency: C, durationMs: MS, seqStart: (seq += 1_000_000) });
  const cpu = cpuBetween(a, snapshot(comps));
  const sent = { batches: stubCount.batches - s0.batches, events: stubCount.events - s0.events };
  const per = (k: keyof typeof cpu.cpuMs) => cpu.cpuMs[k] / r.sent;
  const f: Figures = {
    rate: r.achievedRate,
    next: per("next-server"),
    pgrst: per("postgrest"),
    pg: per("postgres"),
    proxy: per("bench: REST proxy"),
    all: per("next-server") + per("postgrest") + per("postgres") + per("bench: REST proxy"),
  };
  console.log(
    `${name.padEnd(24)} ${r.achievedRate.toFixed(0).padStart(5)}/s ok ${r.ok}/${r.sent}  CPU/req: next ${f.next.toFixed(2)} ` +
      `pgrst ${f.pgrst.toFixed(2)} pg ${f.pg.toFixed(2)} restproxy+stub ${f.proxy.toFixed(2)} = ${f.all.toFixed(2)} ms; ` +
      `other ${per("other processes").toFixed(2)} ms  load ${l0.toFixed(2)}` +
      (sent.batches ? `; event batches ${sent.batches} (${(sent.events / sent.batches).toFixed(1)} events each)` : ""),
  );
  return f;
};
// warm-up
for (const s of [before, after]) {
  await load.run({ kind: "closed", spec: health(s.url), concurrency: C, durationMs: 1500 });
  await load.run({ kind: "closed", spec: post(s.url), concurrency: C, durationMs: 2000, seqStart: (seq += 1_000_000) });
}
if (MODE === "s7") {
  for (const fn of ["submit_task", "submit_task_before"]) {
    await load.run({ kind: "closed", spec: submitRpc(fn), concurrency: C, durationMs: 1500, seqStart: (seq += 1_000_000) });
  }
}
const res: Record<string, Figures[]> = {};
const add = (k: string, v: Figures) => (res[k] ??= []).push(v);
for (let i = 0; i < ROUNDS; i++) {
  const order = i % 2 ? [["after", after], ["before", before]] as const : [["before", before], ["after", after]] as const;
  for (const [n, s] of order) {
    add(`${n} health`, await measure(`r${i} ${n} health`, health(s.url), s.proc.pid));
    add(`${n} POST`, await measure(`r${i} ${n} POST`, post(s.url), s.proc.pid));
  }
  if (MODE === "s6") {
    const pOrder = i % 2 ? [["jwt cache", stack.supabaseUrl], ["no cache", noCache!.url]] as const : [["no cache", noCache!.url], ["jwt cache", stack.supabaseUrl]] as const;
    for (const [n, u] of pOrder) add(`rpc ${n}`, await measure(`r${i} rpc ${n}`, rpc(u), undefined));
  } else {
    const fns = i % 2 ? ["submit_task", "submit_task_before"] : ["submit_task_before", "submit_task"];
    for (const fn of fns) add(`rpc ${fn}`, await measure(`r${i} rpc ${fn}`, submitRpc(fn), undefined));
    // The same call through the old http proxy: the proxies' own difference per call (this process's CPU).
    add("rpc submit_task, http proxy", await measure(`r${i} rpc via http proxy`, submitRpc("submit_task", oldProxyUrl), undefined));
  }
}
const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
console.log(`\nmedians over ${ROUNDS} rounds (CPU ms per request; restproxy+stub = this process: the /rest/v1 proxies and the event stub):`);
for (const [k, v] of Object.entries(res)) {
  const m = (f: keyof Figures) => med(v.map((x) => x[f]));
  console.log(
    `  ${k.padEnd(24)} ${m("rate").toFixed(0).padStart(5)}/s  next ${m("next").toFixed(2)}  pgrst ${m("pgrst").toFixed(2)}  ` +
      `pg ${m("pg").toFixed(2)}  restproxy+stub ${m("proxy").toFixed(2)}  sum ${m("all").toFixed(2)}`,
  );
}
for (const n of ["before", "after"]) {
  const h = res[`${n} health`]!, p = res[`${n} POST`]!;
  console.log(`  ${n}: POST/health per round ${h.map((x, i) => ((p[i]!.rate / x.rate) * 100).toFixed(1) + "%").join(" ")}`);
}
console.log(`  load average at the end: ${loadavg().map((x) => x.toFixed(2)).join(" ")}`);
loadProc.kill();
await before.stop();
await after.stop();
stub.close();
for (const c of cleanups.reverse()) await c();
await stack.stop();
await rm(dataDir, { recursive: true, force: true });
if (MODE === "s6") rmSync(join(root, BEFORE_DIR), { recursive: true, force: true });
process.exit(0);

/**
 * submit_task as it was before session 7 (20261130121000_overnight_mode.sql's body, calling outbox_record in LANGUAGE
 * sql), under other names, in this bench's scratch database only.
 */
async function createSubmitTaskBefore(databaseUrl: string): Promise<void> {
  const c = new pg.Client({ connectionString: databaseUrl });
  await c.connect();
  try {
    await c.query(`create function public.outbox_record_as_sql(p_name text, p_data jsonb, p_event_id text)
      returns void language sql set search_path = '' as $$
        insert into public.outbox (event_id, name, data) values (p_event_id, p_name, p_data)
        on conflict (event_id) do nothing
      $$`);
    const old = readFileSync(join(root, "supabase/migrations/20261130121000_overnight_mode.sql"), "utf8");
    const start = old.indexOf("create function public.submit_task(");
    const end = old.indexOf("end $$;", start);
    if (start < 0 || end < 0) throw new Error("submit_task's definition not found in 20261130121000_overnight_mode.sql");
    const copy = old
      .slice(start, end + "end $$;".length)
      .replace("create function public.submit_task(", "create function public.submit_task_before(")
      .replaceAll("public.outbox_record(", "public.outbox_record_as_sql(");
    await c.query(copy);
    await c.query("grant execute on function public.submit_task_before to service_role");
    await c.query("notify pgrst, 'reload schema'");
  } finally {
    await c.end();
  }
  // PostgREST reloads its schema cache asynchronously.
  const deadline = Date.now() + 20_000;
  for (;;) {
    const r = await fetch(`${stack.supabaseUrl}/rest/v1/rpc/submit_task_before`, {
      method: "POST",
      headers: { apikey: stack.secretKey, authorization: `Bearer ${stack.secretKey}`, "content-type": "application/json" },
      body: submitRpc("submit_task_before").bodyTemplate!.replace("%i", "probe"),
    });
    await r.text();
    if (r.status === 200) return;
    if (Date.now() > deadline) throw new Error(`rpc/submit_task_before answers ${r.status}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
