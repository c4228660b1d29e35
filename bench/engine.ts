// npm run bench:engine — the local Inngest engine under load, through the real SDK serve() handler over HTTP.
// A 50-step function with 2 KB step outputs: per-step orchestration overhead (one run), steps/s with 10 runs
// at once, and the engine's peak RSS. The engine runs in its own process so its memory is measured alone.
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { cpus, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { Inngest } from "inngest";
import { serve } from "inngest/node";
import { runSql, startPostgres } from "../local/db/embedded-postgres";
import { freePort } from "../local/ports";
import { cpuMs } from "./lib/procs";

const STEPS = 50;
const OUTPUT_BYTES = 2048;
const CONCURRENT = 10;

function peakRssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return kb / 1024;
}


async function startEngineProcess(databaseUrl: string, port: number): Promise<ChildProcess> {
  const proc = spawn(process.execPath, ["--import", "tsx", "local/engine/main.ts", "--database-url", databaseUrl, "--port", String(port)], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  await new Promise<void>((resolve, reject) => {
    let out = "";
    proc.stdout!.on("data", (b: Buffer) => {
      out += b.toString();
      if (out.includes('"ready":true')) resolve();
      if (out.length > 1e6) out = out.slice(-1000);
    });
    proc.once("exit", (c) => reject(new Error(`engine exited (${c})`)));
  });
  return proc;
}

async function main(): Promise<void> {
  const dataDir = await mkdtemp(join(tmpdir(), "nightshift-bench-engine-"));
  const pg = await startPostgres({ dataDir, port: await freePort(), persistent: false });
  let engine: ChildProcess | undefined;
  try {
    await runSql(pg.url(), "CREATE DATABASE bench_engine");
    const enginePort = await freePort();
    engine = await startEngineProcess(pg.url("bench_engine"), enginePort);
    const engineUrl = `http://127.0.0.1:${enginePort}`;

    const inngest = new Inngest({
      id: "bench",
      isDev: true,
      baseUrl: engineUrl,
      logger: { info() {}, warn() {}, error() {}, debug() {} },
    });
    const payload = "x".repeat(OUTPUT_BYTES);
    const fn = inngest.createFunction({ id: "fifty", triggers: [{ event: "bench/go" }] }, async ({ step }) => {
      let n = 0;
      for (let i = 0; i < STEPS; i++) {
        const r = await step.run(`step-${i}`, () => ({ i, payload }));
        n += r.i;
      }
      return n;
    });
    // Time spent inside the SDK handler, so the engine's own share can be told apart.
    let sdkMs = 0;
    let calls = 0;
    const handler = serve({ client: inngest, functions: [fn] });
    const server = createServer((req, res) => {
      const t0 = performance.now();
      res.once("finish", () => {
        sdkMs += performance.now() - t0;
        calls++;
      });
      return handler(req, res);
    });
    server.keepAliveTimeout = 60_000;
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    const serveUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/inngest`;
    const sync = await fetch(serveUrl, { method: "PUT" });
    if (!sync.ok) throw new Error(`sync failed: ${await sync.text()}`);

    const send = async (n: number): Promise<string[]> => {
      const res = await fetch(`${engineUrl}/e/bench`, {
        method: "POST",
        body: JSON.stringify(Array.from({ length: n }, (_, i) => ({ name: "bench/go", data: { i } }))),
      });
      return ((await res.json()) as { ids: string[] }).ids;
    };
    const waitAll = async (eventIds: string[]) => {
      for (;;) {
        const res = await fetch(`${engineUrl}/v0/runs?function_id=bench-fifty&status=completed&limit=1000`);
        const done = new Set(((await res.json()) as { data: { event_id: string }[] }).data.map((r) => r.event_id));
        if (eventIds.every((id) => done.has(id))) return;
        await new Promise((r) => setTimeout(r, eventIds.length > 1 ? 20 : 5));
      }
    };
    const measure = async (n: number) => {
      sdkMs = 0;
      calls = 0;
      const t0 = performance.now();
      await waitAll(await send(n));
      return { wall: performance.now() - t0, sdk: sdkMs, calls };
    };

    await measure(2); // warm up JIT, connections and Postgres caches

    const singles = [];
    for (let i = 0; i < 5; i++) singles.push(await measure(1));
    singles.sort((a, b) => a.wall - b.wall);
    const single = singles[2]!; // median of 5
    const perStep = single.wall / STEPS;
    const enginePerStep = (single.wall - single.sdk) / STEPS;

    const concurrent = [];
    const cpu0 = { engine: cpuMs({ pid: engine.pid! }), app: process.cpuUsage(), pg: cpuMs({ comm: "postgres" }) };
    for (let i = 0; i < 3; i++) concurrent.push(await measure(CONCURRENT));
    const appCpu = process.cpuUsage(cpu0.app);
    const cpuUse = {
      engine: cpuMs({ pid: engine.pid! }) - cpu0.engine,
      app: (appCpu.user + appCpu.system) / 1000,
      pg: cpuMs({ comm: "postgres" }) - cpu0.pg,
    };
    const totalSteps = 3 * CONCURRENT * STEPS;
    concurrent.sort((a, b) => a.wall - b.wall);
    const conc = concurrent[1]!; // median of 3
    const stepsPerSec = (CONCURRENT * STEPS) / (conc.wall / 1000);
    const rss = peakRssMb(engine.pid!);

    const cpu = cpus()[0]?.model ?? "unknown cpu";
    console.log(`\nLocal Inngest engine benchmark — ${new Date().toISOString()}`);
    console.log(`machine: ${cpus().length} cores (${cpu}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM, node ${process.version}`);
    console.log(`workload: ${STEPS}-step function, ${OUTPUT_BYTES} B per step output, real SDK serve() over HTTP, Postgres ${pg.port}`);
    console.log("");
    console.log(`single run (median of 5):   ${single.wall.toFixed(0)} ms wall for ${STEPS} steps (${single.calls} SDK calls)`);
    console.log(`  wall time per step:       ${perStep.toFixed(2)} ms   (goal ≤ 10 ms)`);
    console.log(`  of which engine + HTTP:   ${enginePerStep.toFixed(2)} ms per step (wall minus time inside the SDK handler)`);
    console.log(`${CONCURRENT} concurrent runs (median of 3): ${conc.wall.toFixed(0)} ms for ${CONCURRENT * STEPS} steps`);
    console.log(`  throughput:               ${stepsPerSec.toFixed(0)} steps/s   (goal ≥ 500)`);
    console.log(
      `  CPU per step (concurrent phase): engine ${(cpuUse.engine / totalSteps).toFixed(2)} ms, ` +
        `app/SDK + bench poller ${(cpuUse.app / totalSteps).toFixed(2)} ms, Postgres ${(cpuUse.pg / totalSteps).toFixed(2)} ms`,
    );
    console.log(`engine peak RSS (VmHWM, engine process alone): ${rss.toFixed(0)} MB   (goal < 300 MB)`);
    server.closeAllConnections();
    server.close();
  } finally {
    engine?.kill("SIGTERM");
    await new Promise((r) => setTimeout(r, 300));
    await pg.stop().catch(() => {});
    await rm(dataDir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
