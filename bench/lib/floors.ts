// The floors under one checkpoint round trip, measured inside bench:engine's run (same Postgres, same database, same
// moment), so its report shows the gap between the measured round trip and what the machine allows: a loopback HTTP
// round trip to another Node process through the app's fetch, a Postgres round trip, and the engine's own `apply`
// of a checkpoint-shaped transition with its durable commit (and, to price the WAL flush alone, the same with
// `synchronous_commit = off` on that one measuring connection — never what the engine does).
import { spawn } from "node:child_process";
import { closeSync, constants, fdatasyncSync, openSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";

export interface FloorStats {
  p50: number;
  mean: number;
}

export function floorStats(samples: number[]): FloorStats {
  const s = [...samples].sort((a, b) => a - b);
  return { p50: s[Math.floor(s.length / 2)] ?? NaN, mean: s.reduce((a, b) => a + b, 0) / (s.length || 1) };
}

/** Idle time before each timed sample: 0 = back to back; > 0 lets every process sleep first, as in a run. */
async function timeIt(n: number, f: (i: number) => Promise<unknown>, idleMs = 0): Promise<number[]> {
  for (let i = 0; i < Math.min(100, n); i++) await f(-1 - i); // warm up
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    if (idleMs > 0) await new Promise((r) => setTimeout(r, idleMs));
    const t0 = performance.now();
    await f(i);
    out.push(performance.now() - t0);
  }
  return out;
}

const SERVER = `
const http = require("node:http");
const ok = Buffer.from('{"status":200}');
const srv = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => { JSON.parse(Buffer.concat(chunks).toString()); res.writeHead(200, { "content-type": "application/json", "content-length": ok.length }); res.end(ok); });
});
srv.keepAliveTimeout = 60000;
srv.listen(0, "127.0.0.1", () => process.stdout.write(String(srv.address().port) + "\\n"));
`;

/**
 * The whole hop chain of a checkpoint with none of the engine's code: a bare Node server in another process that, for
 * each POST, runs the engine's `apply` of one step (durable commit) on its own pg client and then answers. Its round
 * trip against the SDK's measured one says how much of a step the engine's code adds beyond the hops themselves.
 */
const APPLY_SERVER = `
const http = require("node:http");
const pg = require("pg");
const ok = Buffer.from('{"status":200}');
const c = new pg.Client({ connectionString: process.env.FLOOR_DB_URL });
let seq = 0;
c.connect().then(() => {
  const runId = "floor-server-" + Date.now();
  const srv = http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (x) => chunks.push(x));
    req.on("end", () => {
      const body = JSON.parse(Buffer.concat(chunks).toString());
      const at = Date.now();
      const hash = "s" + seq++;
      const doc = { memos: [{ run_id: runId, hash, pos: seq, value: { data: body.steps[0].data }, at }],
        history: [{ run_id: runId, at, type: "step.completed", step: hash, name: hash, detail: { checkpointed: true } }] };
      c.query({ name: "a", text: "SELECT inngest_local.apply($1::jsonb)", values: [JSON.stringify(doc)] }).then(() => {
        res.writeHead(200, { "content-type": "application/json", "content-length": ok.length });
        res.end(ok);
      });
    });
  });
  srv.keepAliveTimeout = 60000;
  srv.listen(0, "127.0.0.1", () => process.stdout.write(String(srv.address().port) + "\\n"));
  process.on("SIGTERM", () => c.query("DELETE FROM inngest_local.memos WHERE run_id = $1", [runId])
    .then(() => c.query("DELETE FROM inngest_local.history WHERE run_id = $1", [runId])).finally(() => process.exit(0)));
});
`;

/** POST `body` (a checkpoint) to APPLY_SERVER; ms per round trip, back to back and after `idleMs` of idle each. */
export async function checkpointChainFloor(fetchImpl: typeof fetch, body: string, dbUrl: string, n: number, idleMs: number): Promise<{ back: number[]; idle: number[] }> {
  const child = spawn(process.execPath, ["-e", APPLY_SERVER], { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, FLOOR_DB_URL: dbUrl } });
  try {
    const port = await new Promise<number>((resolve) => child.stdout!.once("data", (d: Buffer) => resolve(Number(String(d).trim()))));
    const url = `http://127.0.0.1:${port}/v1/checkpoint/r/async`;
    const post = async () => (await fetchImpl(url, { method: "POST", body, headers: { "content-type": "application/json" } })).status;
    return { back: await timeIt(n, post), idle: await timeIt(n, post, idleMs) };
  } finally {
    const exited = new Promise((r) => child.once("exit", r));
    child.kill("SIGTERM");
    await Promise.race([exited, new Promise((r) => setTimeout(r, 2000))]);
  }
}

/** POST `body` to a bare Node server in another process (keep-alive loopback) with `fetchImpl`; ms per round trip. */
export async function httpFloor(fetchImpl: typeof fetch, body: string, n: number, idleMs = 0): Promise<number[]> {
  const child = spawn(process.execPath, ["-e", SERVER], { stdio: ["ignore", "pipe", "inherit"] });
  try {
    const port = await new Promise<number>((resolve) => child.stdout!.once("data", (d: Buffer) => resolve(Number(String(d).trim()))));
    const url = `http://127.0.0.1:${port}/v1/checkpoint/r/async`;
    return await timeIt(n, async () => (await fetchImpl(url, { method: "POST", body, headers: { "content-type": "application/json" } })).status, idleMs);
  } finally {
    child.kill();
  }
}

export interface PgFloors {
  select1: number[];
  apply: number[];
  /** The durable apply after `idleMs` of idle each time (everything asleep, as between two steps of a run). */
  applyAfterIdle: number[];
  applyNoFlush: number[];
}

/**
 * On the engine's database (schema inngest_local must exist): `SELECT 1`, and `inngest_local.apply` of what one
 * checkpointed step commits (its memo of `payload` and its history line; a fresh step id each time, as in a run).
 */
export async function pgFloors(url: string, payload: unknown, n: number, idleMs = 3): Promise<PgFloors> {
  const c = new pg.Client({ connectionString: url });
  c.on("error", () => {});
  await c.connect();
  try {
    const runId = `floor-${Date.now()}`;
    let seq = 0;
    const apply = () => {
      const at = Date.now();
      const hash = `h${seq++}`;
      const doc = {
        memos: [{ run_id: runId, hash, pos: seq, value: { data: payload }, at }],
        history: [{ run_id: runId, at, type: "step.completed", step: hash, name: hash, detail: { checkpointed: true } }],
      };
      return c.query({ name: "floor_apply", text: "SELECT inngest_local.apply($1::jsonb)", values: [JSON.stringify(doc)] });
    };
    const select1 = await timeIt(n, () => c.query({ name: "floor_s1", text: "SELECT 1" }));
    const durable = await timeIt(n, apply);
    const afterIdle = await timeIt(n, apply, idleMs);
    await c.query("SET synchronous_commit = off");
    const noFlush = await timeIt(n, apply);
    await c.query("SET synchronous_commit = on");
    await c.query("DELETE FROM inngest_local.memos WHERE run_id = $1", [runId]);
    await c.query("DELETE FROM inngest_local.history WHERE run_id = $1", [runId]);
    return { select1, apply: durable, applyAfterIdle: afterIdle, applyNoFlush: noFlush };
  } finally {
    await c.end().catch(() => {});
  }
}

/**
 * The disk's own floor: rewrite 8 KB of a preallocated file and fdatasync it (what a WAL flush does, minus Postgres),
 * in `dir` (the database's filesystem). Synchronous calls: the bench does nothing else meanwhile.
 */
export function fdatasyncFloor(dir: string, n: number): number[] {
  const file = join(dir, `nightshift-fdatasync-floor-${process.pid}`);
  const fd = openSync(file, "w");
  const page = Buffer.alloc(8192, 1);
  try {
    for (let i = 0; i < 64; i++) writeSync(fd, page, 0, page.length, i * page.length);
    fdatasyncSync(fd);
    const out: number[] = [];
    for (let i = 0; i < n + 50; i++) {
      const t0 = performance.now();
      writeSync(fd, page, 0, page.length, (i % 64) * page.length);
      fdatasyncSync(fd);
      if (i >= 50) out.push(performance.now() - t0);
    }
    return out;
  } finally {
    closeSync(fd);
    rmSync(file, { force: true });
  }
}

/**
 * What the engine's journal write costs (local/engine/journal.ts): `bytes` written into a zero-filled file opened
 * O_DSYNC, one record after the other from its start, as the journal writes between two rewinds.
 */
export function dsyncWriteFloor(dir: string, n: number, bytes: number): number[] {
  const file = join(dir, `nightshift-dsync-floor-${process.pid}`);
  const fd = openSync(file, constants.O_WRONLY | constants.O_CREAT | constants.O_DSYNC, 0o600);
  const rec = Buffer.alloc(bytes, 1);
  try {
    writeSync(fd, Buffer.alloc(1 << 20), 0, 1 << 20, 0);
    fdatasyncSync(fd);
    const out: number[] = [];
    const per = Math.floor((1 << 20) / bytes);
    for (let i = 0; i < n + 50; i++) {
      const t0 = performance.now();
      writeSync(fd, rec, 0, rec.length, (i % per) * bytes);
      if (i >= 50) out.push(performance.now() - t0);
    }
    return out;
  } finally {
    closeSync(fd);
    rmSync(file, { force: true });
  }
}
