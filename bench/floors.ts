// npm run bench:floors — the floors under one checkpointed step on this machine, each measured alone: an HTTP round
// trip between two Node processes on loopback (keep-alive, the app's fetch), a Postgres round trip and a durable
// commit (TCP and Unix socket, each WAL sync method), and the event loop's own hops. What bench:engine's wall per
// step is made of, so docs/benchmarks.md can say which part is ours.
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { keepAliveFetch } from "../lib/net/keepalive-fetch";
import { startPostgres } from "../local/db/embedded-postgres";
import { freePort } from "../local/ports";

const N = Number(process.env["BENCH_N"] ?? 2000);
const BODY = JSON.stringify({ steps: [{ op: "StepRun", id: "x".repeat(40), data: { i: 1, payload: "x".repeat(2048) } }] });

function stats(samples: number[]): string {
  const s = [...samples].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
  const mean = s.reduce((a, b) => a + b, 0) / s.length;
  return `p50 ${q(0.5).toFixed(3)}  p90 ${q(0.9).toFixed(3)}  mean ${mean.toFixed(3)} ms`;
}

async function timeIt(n: number, f: () => Promise<unknown>): Promise<number[]> {
  for (let i = 0; i < Math.min(200, n); i++) await f(); // warm up
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await f();
    out.push(performance.now() - t0);
  }
  return out;
}

const SERVER = `
const http = require("node:http");
const ok = Buffer.from('{"status":200}');
const srv = http.createServer((req, res) => {
  req.on("data", () => {});
  req.on("end", () => { res.writeHead(200, { "content-type": "application/json", "content-length": ok.length }); res.end(ok); });
});
srv.keepAliveTimeout = 60000;
srv.listen(0, "127.0.0.1", () => process.stdout.write(String(srv.address().port) + "\\n"));
`;

async function httpFloor(): Promise<void> {
  const child = spawn(process.execPath, ["-e", SERVER], { stdio: ["ignore", "pipe", "inherit"] });
  const port = await new Promise<number>((resolve) => child.stdout!.once("data", (d: Buffer) => resolve(Number(String(d).trim()))));
  const url = `http://127.0.0.1:${port}/v1/checkpoint/r/async`;
  try {
    const viaApp = await timeIt(N, async () => (await keepAliveFetch(url, { method: "POST", body: BODY, headers: { "content-type": "application/json" } })).status);
    console.log(`HTTP POST 2.1 KB, other process, loopback keep-alive, the app's fetch: ${stats(viaApp)}`);
    const viaGlobal = await timeIt(N, async () => (await fetch(url, { method: "POST", body: BODY, headers: { "content-type": "application/json" } })).text());
    console.log(`  the same with the global fetch (undici):                          ${stats(viaGlobal)}`);
  } finally {
    child.kill();
  }
}

async function pgFloor(): Promise<void> {
  const dataDir = await mkdtemp(join(tmpdir(), "nightshift-bench-floors-"));
  const port = await freePort();
  const server = await startPostgres({ dataDir, port, persistent: false });
  try {
    const admin = new pg.Client({ connectionString: server.url() });
    await admin.connect();
    await admin.query("CREATE TABLE IF NOT EXISTS floor (id bigserial primary key, v jsonb)");
    const tcp = new pg.Client({ connectionString: server.url() });
    // The embedded server also listens on its Unix socket in /tmp (the default unix_socket_directories).
    const unix = new pg.Client({ host: "/tmp", port, user: "postgres", password: "postgres", database: "postgres" });
    await tcp.connect();
    await unix.connect();
    const doc = JSON.stringify({ i: 1, payload: "x".repeat(2048) });
    for (const [name, c] of [["TCP", tcp], ["Unix socket", unix]] as const) {
      console.log(`Postgres ${name}: SELECT 1                                  ${stats(await timeIt(N, () => c.query({ name: "s1", text: "SELECT 1" })))}`);
      console.log(`Postgres ${name}: INSERT 2 KB jsonb, durable commit             ${stats(await timeIt(N, () => c.query({ name: "ins", text: "INSERT INTO floor (v) VALUES ($1::jsonb)", values: [doc] })))}`);
    }
    await unix.query("SET synchronous_commit = off");
    console.log(`Postgres Unix socket: the same INSERT, synchronous_commit=off (not acceptable; what the flush costs): ${stats(await timeIt(N, () => unix.query({ name: "ins", text: "INSERT INTO floor (v) VALUES ($1::jsonb)", values: [doc] })))}`);
    await unix.query("SET synchronous_commit = on");
    // Twice, alternating, so a change of the machine's load between two methods shows as a spread, not a difference.
    for (const method of ["fdatasync", "open_datasync", "fsync", "fdatasync", "open_datasync"]) {
      await admin.query(`ALTER SYSTEM SET wal_sync_method = '${method}'`);
      await admin.query("SELECT pg_reload_conf()");
      await new Promise((r) => setTimeout(r, 200));
      console.log(`Postgres Unix socket: durable INSERT, wal_sync_method=${method.padEnd(13)} ${stats(await timeIt(N, () => unix.query({ name: "ins", text: "INSERT INTO floor (v) VALUES ($1::jsonb)", values: [doc] })))}`);
    }
    await Promise.all([admin.end(), tcp.end(), unix.end()]);
  } finally {
    await server.stop().catch(() => {});
    await rm(dataDir, { recursive: true, force: true });
  }
}

async function loopFloor(): Promise<void> {
  console.log(`event loop: setImmediate hop                                  ${stats(await timeIt(N, () => new Promise((r) => setImmediate(r))))}`);
  console.log(`event loop: setTimeout(0) hop                                 ${stats(await timeIt(N, () => new Promise((r) => setTimeout(r, 0))))}`);
}

async function main(): Promise<void> {
  const la = () => loadavg().map((x) => x.toFixed(2)).join(" ");
  console.log(`bench:floors — ${new Date().toISOString()}, ${N} samples each, load ${la()}`);
  const only = process.env["BENCH_ONLY"];
  if (!only || only === "loop") await loopFloor();
  if (!only || only === "http") await httpFloor();
  if (!only || only === "pg") await pgFloor();
  console.log(`load at the end: ${la()}`);
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
