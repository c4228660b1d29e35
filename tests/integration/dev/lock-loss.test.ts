// `npm run dev` (local/dev.ts) when its engine loses the single-writer lock to another session (docs/engine.md, "The
// single-writer lock"): the engine says so and stops itself, and the launcher takes its whole stack down with it —
// next dev and Postgres end, nothing is left behind — and exits 1, so whoever started it sees the failure. The lock is
// taken while next dev is still starting (the engine starts before it), so no app build is needed.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, expect, it } from "vitest";
import { PROCESS_FILE, type RecordedProcess } from "../../../local/dev-processes";
import { freePort } from "../../../local/ports";
import { until } from "../../support/engine-harness";
import { cleanUpDevRun, keepNextDevFiles, repoRoot } from "../../support/dev-launch";

const root = repoRoot;
// Its own build folder (git-ignored like every .next-*): never the launcher test's, the e2e build's or a developer's.
const DIST_DIR = ".next-devlocktest";
// next dev rewrites these for its distDir; they are put back afterwards (as in launcher.test.ts).
const restoreNextDevFiles = keepNextDevFiles();

const alive = (pid: number) => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return !stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
  } catch {
    return false;
  }
};

let dataDir = "";
let launcherPid: number | undefined;

afterAll(async () => {
  if (launcherPid && alive(launcherPid)) process.kill(launcherPid, "SIGKILL");
  await cleanUpDevRun(dataDir, DIST_DIR);
  await restoreNextDevFiles();
});

it("the engine loses its lock: the launcher says so, stops its whole stack and exits 1", async () => {
  dataDir = await mkdtemp(join(tmpdir(), "nightshift-devlock-"));
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) {
    if (/^(SUPABASE_|INNGEST_|ANTHROPIC_)/.test(k) || k === "NODE_ENV") delete env[k];
  }
  const pgPort = await freePort();
  Object.assign(env, {
    NIGHTSHIFT_DATA_DIR: dataDir,
    NIGHTSHIFT_DIST_DIR: DIST_DIR,
    PORT: String(await freePort()),
    NIGHTSHIFT_PG_PORT: String(pgPort),
    NIGHTSHIFT_REST_PORT: String(await freePort()),
    NIGHTSHIFT_CLAUDE_PORT: String(await freePort()),
    NIGHTSHIFT_ENGINE_PORT: String(await freePort()),
    NIGHTSHIFT_DIGEST_TIME: "off",
    NEXT_TELEMETRY_DISABLED: "1",
  });
  const proc = spawn(process.execPath, ["--import", "tsx", "local/dev.ts"], { cwd: root, env, stdio: ["ignore", "pipe", "pipe"] });
  launcherPid = proc.pid;
  let out = "";
  for (const s of [proc.stdout!, proc.stderr!]) {
    s.setEncoding("utf8");
    s.on("data", (c: string) => (out += c));
  }
  const exited = new Promise<number | null>((r) => proc.once("exit", (code) => r(code)));
  let exitCode: number | null | undefined;
  void exited.then((c) => (exitCode = c));

  // next dev spawned (recorded): the engine has been running since before it.
  const recorded = await until(
    () => {
      if (exitCode !== undefined) throw new Error(`the launcher exited (${exitCode}) early:\n${out.slice(-3000)}`);
      try {
        return (JSON.parse(readFileSync(join(dataDir, PROCESS_FILE), "utf8")) as RecordedProcess[]).find((r) => r.name === "next dev");
      } catch {
        return undefined;
      }
    },
    { timeoutMs: 180_000, intervalMs: 100, message: "the launcher never started next dev" },
  );
  const pgPid = Number(readFileSync(join(dataDir, "postgres", "postmaster.pid"), "utf8").split("\n")[0]);
  expect(out).toContain("local Inngest engine listening");

  // Another session ends the engine's lock session and takes the lock the moment it is free.
  const thief = new pg.Client({ connectionString: `postgres://postgres:postgres@127.0.0.1:${pgPort}/nightshift` });
  thief.on("error", () => {}); // the launcher stops this Postgres under it
  try {
    await thief.connect();
    // Until it holds it: the engine re-takes its lock at once, so a session it got back is ended again.
    await thief.query(`DO $$ DECLARE deadline timestamptz := clock_timestamp() + interval '60 seconds'; holder int; BEGIN
      LOOP
        EXIT WHEN pg_try_advisory_lock(hashtext('inngest_local.engine'));
        IF clock_timestamp() > deadline THEN RAISE EXCEPTION 'could not take the engine lock'; END IF;
        SELECT l.pid INTO holder FROM pg_locks l JOIN pg_database d ON d.oid = l.database
          WHERE d.datname = current_database() AND l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
            AND l.objid = (hashtext('inngest_local.engine')::bigint & 4294967295)::oid;
        IF holder IS NOT NULL THEN PERFORM pg_terminate_backend(holder); END IF;
      END LOOP;
    END $$`);
    expect(await exited, out.slice(-3000)).toBe(1);
  } finally {
    await thief.end().catch(() => {});
  }
  expect(out).toMatch(/ENGINE ERROR: this engine lost its single-writer lock/);
  expect(out).toContain("[dev] stopping");
  // Stopped because of the lock, not later because the start failed without its engine (the sync) or next dev died.
  expect(out).not.toContain("failed to start");
  expect(out).not.toContain("next dev exited");
  await until(() => !alive(recorded.pid) && !alive(pgPid), { timeoutMs: 30_000, intervalMs: 200, message: "a child outlived the launcher" });
  expect(out).not.toMatch(/Unhandled|uncaught/i);
}, 300_000);
