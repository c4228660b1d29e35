// npm run bench:submit-ab — an interleaved before/after of session 6's two cuts in a POST's CPU, on one data stack
// in one sitting (so both sides see the same machine load, which on a shared box moves more than the cuts do):
//   - proxy.ts's matcher: two `next start` from one build — `.next-bench` as built (POST /api/tasks and GET
//     /api/health skip proxy.ts) and a copy, `.next-bench-before`, whose compiled matcher is the old one (proxy.ts runs
//     for them, as before) — with the event API stubbed (no runs), closed loops health then POST, alternating order;
//   - PostgREST's JWT cache: `rpc/api_key_hash` against the stack's PostgREST (cache on) and a second PostgREST on the
//     same database with jwt-cache-max-lifetime 0 (PostgREST 12's default), alternating.
// Needs `.next-bench` (run `npm run bench:submit` once, or `npm run bench:submit-ab -- --build`). AB_ROUNDS (4),
// AB_MS (5000: each closed loop). Prints per round and the medians: rate, and CPU per request of the next-server and
// of PostgREST (from /proc), with the load average.
import { spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { createApiKey } from "../lib/api-keys";
import { startDataStack } from "../local/data-stack";
import { asAuthenticator, startPostgrest } from "../local/db/postgrest";
import type { LoadJob, LoadJobSpec, LoadReply } from "./lib/load-child";
import type { LoadResult, RequestSpec } from "./lib/load";
import { cpuBetween, snapshot } from "./lib/procs";
import { cpSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { adminClient, build, DIST_DIR, root, startNext } from "./lib/next-app";

const ROUNDS = Number(process.env.AB_ROUNDS ?? 4);
const MS = Number(process.env.AB_MS ?? 5000);
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
// The same build with the matcher proxy.ts had before: the two exact-path exclusions taken out of the compiled regexp.
const BEFORE_DIR = `${DIST_DIR}-before`;
rmSync(join(root, BEFORE_DIR), { recursive: true, force: true });
cpSync(join(root, DIST_DIR), join(root, BEFORE_DIR), { recursive: true });
{
  const f = join(root, BEFORE_DIR, "server", "functions-config-manifest.json");
  const text = readFileSync(f, "utf8");
  const old = text.replaceAll("|api\\\\/tasks$|api\\\\/health$", "").replaceAll("|api/tasks$|api/health$", "");
  if (old === text) throw new Error(`${f}: the matcher has no exclusion of /api/tasks and /api/health to take out (an old build?)`);
  writeFileSync(f, old);
}

const dataDir = await mkdtemp(join(tmpdir(), "ab-submit-"));
const stack = await startDataStack({ dataDir, persistent: false });
const noCache = await startPostgrest({ databaseUrl: asAuthenticator(stack.databaseUrl), jwtSecret: stack.jwtSecret, jwtCacheMaxLifetimeS: 0 });
const stub = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", () => {
    let n = 1;
    try {
      const b = JSON.parse(Buffer.concat(chunks).toString()) as unknown;
      n = Array.isArray(b) ? b.length : 1;
    } catch {}
    const t = JSON.stringify({ ids: Array.from({ length: n }, () => randomUUID()), status: 200 });
    res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(t) });
    res.end(t);
  });
});
await new Promise<void>((r) => stub.listen(0, "127.0.0.1", () => r()));
const stubUrl = `http://127.0.0.1:${(stub.address() as AddressInfo).port}`;
const env = (dist: string) => ({
  SUPABASE_URL: stack.supabaseUrl,
  SUPABASE_SECRET_KEY: stack.secretKey,
  ANTHROPIC_BASE_URL: "http://127.0.0.1:9",
  ANTHROPIC_API_KEY: "",
  INNGEST_DEV: stubUrl,
  NIGHTSHIFT_DIST_DIR: dist,
});
const before = await startNext(env(BEFORE_DIR));
const after = await startNext(env(DIST_DIR));
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
const rpc = (u: string): RequestSpec => ({
  url: `${u}/rest/v1/rpc/api_key_hash`,
  method: "POST",
  headers: { apikey: stack.secretKey, authorization: `Bearer ${stack.secretKey}`, "content-type": "application/json" },
  bodyTemplate: JSON.stringify({ p_key_id: key.id }),
  expectStatus: 200,
});
let seq = 0;
const measure = async (name: string, spec: RequestSpec, pg: number | undefined) => {
  const comps = { benchPid: process.pid, nextPgid: pg, loadPid: loadProc.pid };
  const l0 = loadavg()[0]!;
  const a = snapshot(comps);
  const r = await load.run({ kind: "closed", spec, concurrency: C, durationMs: MS, seqStart: (seq += 1_000_000) });
  const cpu = cpuBetween(a, snapshot(comps));
  const per = (k: keyof typeof cpu.cpuMs) => (cpu.cpuMs[k] / r.sent).toFixed(2);
  console.log(
    `${name.padEnd(22)} ${r.achievedRate.toFixed(0).padStart(5)}/s ok ${r.ok}/${r.sent}  CPU/req: next ${per("next-server")} pgrst ${per("postgrest")} pg ${per("postgres")} restproxy ${per("bench: REST proxy")} other ${per("other processes")} ms  load ${l0.toFixed(2)}`,
  );
  return { rate: r.achievedRate, next: cpu.cpuMs["next-server"] / r.sent, pgrst: cpu.cpuMs["postgrest"] / r.sent };
};
// warm-up
for (const s of [before, after]) {
  await load.run({ kind: "closed", spec: health(s.url), concurrency: C, durationMs: 1500 });
  await load.run({ kind: "closed", spec: post(s.url), concurrency: C, durationMs: 2000, seqStart: (seq += 1_000_000) });
}
const res: Record<string, { rate: number; next: number; pgrst: number }[]> = {};
const add = (k: string, v: { rate: number; next: number; pgrst: number }) => (res[k] ??= []).push(v);
for (let i = 0; i < ROUNDS; i++) {
  const order = i % 2 ? [["after", after], ["before", before]] as const : [["before", before], ["after", after]] as const;
  for (const [n, s] of order) {
    add(`${n} health`, await measure(`r${i} ${n} health`, health(s.url), s.proc.pid));
    add(`${n} POST`, await measure(`r${i} ${n} POST`, post(s.url), s.proc.pid));
  }
  const pOrder = i % 2 ? [["jwt cache", stack.supabaseUrl], ["no cache", noCache.url]] as const : [["no cache", noCache.url], ["jwt cache", stack.supabaseUrl]] as const;
  for (const [n, u] of pOrder) add(`rpc ${n}`, await measure(`r${i} rpc ${n}`, rpc(u), undefined));
}
const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
console.log("\nmedians over rounds:");
for (const [k, v] of Object.entries(res)) console.log(`  ${k.padEnd(16)} ${med(v.map((x) => x.rate)).toFixed(0)}/s  next CPU ${med(v.map((x) => x.next)).toFixed(2)} ms  postgrest CPU ${med(v.map((x) => x.pgrst)).toFixed(2)} ms`);
for (const n of ["before", "after"]) {
  const h = res[`${n} health`]!, p = res[`${n} POST`]!;
  console.log(`  ${n}: POST/health per round ${h.map((x, i) => ((p[i]!.rate / x.rate) * 100).toFixed(1) + "%").join(" ")}`);
}
loadProc.kill();
await before.stop();
await after.stop();
stub.close();
await noCache.stop();
await stack.stop();
await rm(dataDir, { recursive: true, force: true });
rmSync(join(root, BEFORE_DIR), { recursive: true, force: true });
process.exit(0);
