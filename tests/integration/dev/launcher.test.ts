// The real launcher (`npm run dev`, local/dev.ts: embedded Postgres + PostgREST, the engine, the double, `next dev`)
// killed with -9 while a batch-mode task is in flight, then started again on the same data directory: the second
// start ends what the first left behind (next dev, Postgres), says "running" only once its own app answers, and the
// batch task — whose batch the double kept in the data directory — completes. Then Ctrl-C stops everything cleanly.
// Before it all, a forged sync (PUT /api/inngest with another Host) must not move where the engine calls the app.
// Heavy (two `next dev` starts), so one test does all of it.
import { spawn, type ChildProcess } from "node:child_process";
import http from "node:http";
import { readFileSync } from "node:fs";
import { mkdtemp, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect, it } from "vitest";
import { PROCESS_FILE, type RecordedProcess } from "../../../local/dev-processes";
import { freePort } from "../../../local/ports";
import { until } from "../../support/engine-harness";
import { cleanUpDevRun, keepNextDevFiles, repoRoot } from "../../support/dev-launch";

const root = repoRoot;
// Its own build folder (git-ignored like every .next-*), so it never touches the e2e build or a developer's .next.
const DIST_DIR = ".next-devtest";
// next dev rewrites these for its distDir; they are put back afterwards, as bench/lib/next-app.ts does for builds.
const restoreNextDevFiles = keepNextDevFiles();

interface Launcher {
  proc: ChildProcess;
  output(): string;
  /** Resolves when it printed "Nightshift is running"; rejects if it exits first. */
  running: Promise<void>;
  exited: Promise<number | null>;
}

function launch(env: NodeJS.ProcessEnv): Launcher {
  const proc = spawn(process.execPath, ["--import", "tsx", "local/dev.ts"], { cwd: root, env, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  const exited = new Promise<number | null>((r) => proc.once("exit", (code) => r(code)));
  const running = new Promise<void>((resolve, reject) => {
    const check = () => {
      if (out.includes("Nightshift is running")) resolve();
    };
    for (const s of [proc.stdout!, proc.stderr!]) {
      s.setEncoding("utf8");
      s.on("data", (c: string) => {
        out += c;
        check();
      });
    }
    void exited.then((code) => reject(new Error(`the launcher exited (${code}) before it was running:\n${out.slice(-3000)}`)));
  });
  running.catch(() => {});
  return { proc, output: () => out, running, exited };
}

const alive = (pid: number) => {
  const stat = (() => {
    try {
      return readFileSync(`/proc/${pid}/stat`, "utf8");
    } catch {
      return "";
    }
  })();
  return stat !== "" && !stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
};

let dataDir = "";
const launchers: Launcher[] = [];

afterAll(async () => {
  for (const l of launchers) if (l.proc.exitCode === null && l.proc.signalCode === null) l.proc.kill("SIGKILL");
  await cleanUpDevRun(dataDir, DIST_DIR);
  await restoreNextDevFiles();
});

it("kill -9 of the launcher with a batch task in flight, then a new start: orphans ended, the task completes, Ctrl-C stops cleanly", async () => {
  dataDir = await mkdtemp(join(tmpdir(), "nightshift-launcher-"));
  const port = await freePort();
  const env: NodeJS.ProcessEnv = { ...process.env };
  // Everything local: nothing inherited from the test run may point the launcher at other parts.
  for (const k of Object.keys(env)) {
    if (/^(SUPABASE_|INNGEST_|ANTHROPIC_)/.test(k) || k === "NODE_ENV") delete env[k];
  }
  Object.assign(env, {
    NIGHTSHIFT_DATA_DIR: dataDir,
    NIGHTSHIFT_DIST_DIR: DIST_DIR,
    PORT: String(port),
    NIGHTSHIFT_PG_PORT: String(await freePort()),
    NIGHTSHIFT_REST_PORT: String(await freePort()),
    NIGHTSHIFT_CLAUDE_PORT: String(await freePort()),
    NIGHTSHIFT_ENGINE_PORT: String(await freePort()),
    NIGHTSHIFT_DIGEST_TIME: "off",
    NEXT_TELEMETRY_DISABLED: "1",
  });
  const appUrl = `http://127.0.0.1:${port}`;
  const engineUrl = `http://127.0.0.1:${env["NIGHTSHIFT_ENGINE_PORT"]}`;

  const first = launch(env);
  launchers.push(first);
  await first.running;
  const { key } = JSON.parse(await readFile(join(dataDir, "local-api-key.json"), "utf8")) as { key: string };
  const auth = { authorization: `Bearer ${key}`, "content-type": "application/json" };
  // An unsigned out-of-band sync with a forged Host (dev mode needs no signature): the launcher pins the app's serve
  // origin, so the engine keeps calling the app here — unpinned, it called 127.0.0.1:9 and the task below never ran.
  await new Promise<void>((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, method: "PUT", path: "/api/inngest", headers: { host: "127.0.0.1:9" } }, (res) => {
      res.resume();
      res.on("end", resolve);
    });
    req.on("error", reject);
    req.end();
  });

  // A batch-mode task: its turn goes to the double's Batches API, then the run sleeps (30 s) before it polls.
  const posted = await fetch(`${appUrl}/api/tasks`, {
    method: "POST",
    headers: auth,
    body: JSON.stringify({ agent: "research", prompt: "One line on durable execution.", mode: "batch" }),
  });
  expect(posted.status).toBe(202);
  const { task_id } = (await posted.json()) as { task_id: string };
  await until(
    async () => {
      const runs = (await (await fetch(`${engineUrl}/v0/runs?function_id=nightshift-run-task`)).json()) as { data: { run_id: string; status: string }[] };
      const run = runs.data[0];
      if (!run) return false;
      const detail = (await (await fetch(`${engineUrl}/v0/runs/${run.run_id}`)).json()) as { history: { type: string; step_name: string | null }[] };
      return detail.history.some((h) => h.type === "step.sleeping");
    },
    { timeoutMs: 120_000, intervalMs: 500, message: "the batch task did not submit its batch and sleep" },
  );

  const recorded = JSON.parse(await readFile(join(dataDir, PROCESS_FILE), "utf8")) as RecordedProcess[];
  const nextPid = recorded.find((r) => r.name === "next dev")!.pid;
  const pgPid = Number((await readFile(join(dataDir, "postgres", "postmaster.pid"), "utf8")).split("\n")[0]);
  first.proc.kill("SIGKILL");
  await first.exited;
  expect(alive(nextPid)).toBe(true); // orphaned by the kill
  expect(alive(pgPid)).toBe(true);

  const second = launch(env);
  launchers.push(second);
  await second.running;
  expect(alive(nextPid)).toBe(false); // the new start ended what the killed one left
  expect(alive(pgPid)).toBe(false);
  expect(second.output()).not.toContain("EADDRINUSE");

  // The batch, kept in the data directory by the double, is answered after the restart: the task completes.
  const done = await until(
    async () => {
      const r = await fetch(`${appUrl}/api/tasks/${task_id}`, { headers: auth }).catch(() => null);
      const t = ((await r?.json().catch(() => null)) ?? { status: "unknown" }) as { status: string };
      return ["completed", "failed", "stopped"].includes(t.status) ? t : null;
    },
    { timeoutMs: 240_000, intervalMs: 1000, message: "the batch task did not finish after the restart" },
  );
  expect(done.status).toBe("completed");

  // Ctrl-C: every child stops, nothing crashes on the way out.
  const nextPid2 = (JSON.parse(await readFile(join(dataDir, PROCESS_FILE), "utf8")) as RecordedProcess[]).find((r) => r.name === "next dev")!.pid;
  const pgPid2 = Number((await readFile(join(dataDir, "postgres", "postmaster.pid"), "utf8")).split("\n")[0]);
  second.proc.kill("SIGINT");
  expect(await second.exited, second.output().slice(-3000)).toBe(0);
  await until(() => !alive(nextPid2) && !alive(pgPid2), { timeoutMs: 30_000, intervalMs: 200, message: "a child outlived Ctrl-C" });
  expect(second.output()).not.toMatch(/57P01|Unhandled|uncaught/i);
}, 600_000);
