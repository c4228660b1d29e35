// `npm run dev`: the whole of Nightshift on one machine, offline, with no account anywhere.
// Starts, unless configuration points at a hosted replacement:
//   - Postgres + PostgREST (embedded; replaced by SUPABASE_URL + SUPABASE_SECRET_KEY)
//   - the local Inngest engine (replaced by INNGEST_DEV=<url> or INNGEST_SIGNING_KEY + INNGEST_EVENT_KEY)
//   - the offline Claude double (replaced by ANTHROPIC_API_KEY)
// then `next dev`, syncs the app's functions, and prints the URLs and local credentials.
// Data and in-flight runs live under .data/ (git-ignored), so a restart carries on where it stopped.
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { join, resolve } from "node:path";
import { createClient } from "@supabase/supabase-js";
import WebSocket from "ws";
import { startClaudeDouble } from "./claude/server";
import { startDataStack, stopLeftoverServer } from "./data-stack";
import { clearRecords, reapRecorded, recordProcess } from "./dev-processes";
import { assertPortsFree } from "./ports";
import { startPostgres } from "./db/embedded-postgres";
import { startEngine } from "./engine/index";

const root = resolve(import.meta.dirname, "..");
for (const f of [".env.local", ".env"]) if (existsSync(join(root, f))) process.loadEnvFile(join(root, f));

const dataDir = resolve(root, process.env.NIGHTSHIFT_DATA_DIR ?? ".data");
const appPort = Number(process.env.PORT ?? 3000);
const ports = {
  pg: Number(process.env.NIGHTSHIFT_PG_PORT ?? 54322),
  rest: Number(process.env.NIGHTSHIFT_REST_PORT ?? 54321),
  claude: Number(process.env.NIGHTSHIFT_CLAUDE_PORT ?? 54330),
  engine: Number(process.env.NIGHTSHIFT_ENGINE_PORT ?? 8288),
};
const log = (part: string) => (line: string) => console.log(`[${part}] ${line}`);

interface Stoppable {
  name: string;
  stop(): Promise<void>;
}
const running: Stoppable[] = [];
let next: ChildProcess | undefined;
let stopping = false;

async function shutdown(code: number): Promise<never> {
  if (!stopping) {
    stopping = true;
    console.log("\n[dev] stopping…");
    const stopPart = (part: { name: string; stop(): Promise<void> }) =>
      part.stop().catch((e: unknown) => console.error(`[dev] ${part.name} did not stop cleanly:`, e));
    // The engine first: it stops dispatching and waits (bounded) for its calls in flight to the app, so their results
    // are kept and next dev is never torn down under one of its requests (it logged an uncaughtException "aborted").
    const engineFirst = running.filter((p) => p.name === "engine");
    for (const part of engineFirst) await stopPart(part);
    if (next?.pid) {
      const exited = next.exitCode !== null || next.signalCode !== null ? Promise.resolve() : new Promise<void>((r) => next!.once("exit", () => r()));
      // next dev forks workers; kill the whole process group it leads.
      try {
        process.kill(-next.pid, "SIGTERM");
      } catch {
        /* already gone */
      }
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000).unref())]);
    }
    for (const part of running.reverse()) {
      if (!engineFirst.includes(part)) await stopPart(part);
    }
    await clearRecords(dataDir);
  }
  process.exit(code !== 0 ? code : Number(process.exitCode ?? 0)); // a fatal engine error during the stop still says so
}
// embedded-postgres installs async-exit-hook, which on SIGINT/SIGTERM stops every Postgres it started and exits
// (130) on its own — racing the shutdown above, so the engine's connections met a Postgres already going away
// (57P01) and the records were not cleared. The launcher stops Postgres itself, last: unhook those two signals.
const exitHook = createRequire(import.meta.url)("async-exit-hook") as { unhookEvent(event: string): void };
for (const sig of ["SIGINT", "SIGTERM"]) exitHook.unhookEvent(sig);
process.on("SIGINT", () => void shutdown(0));
process.on("SIGTERM", () => void shutdown(0));

async function main(): Promise<void> {
  await mkdir(dataDir, { recursive: true });
  const env: Record<string, string> = { NEXT_TELEMETRY_DISABLED: "1" };

  // What an earlier launcher killed hard left behind (next dev, its Postgres) ends first; then every port this
  // start needs is checked before anything starts, naming the owner of a taken one.
  await reapRecorded(dataDir, log("dev"));
  const embeddedData = !(process.env.SUPABASE_URL && process.env.SUPABASE_SECRET_KEY);
  const localEngine = !(process.env.INNGEST_DEV || process.env.INNGEST_SIGNING_KEY);
  if (embeddedData) await stopLeftoverServer(join(dataDir, "postgres"), log("db"));
  else if (localEngine) await stopLeftoverServer(join(dataDir, "engine-postgres"), log("db"));
  await assertPortsFree([
    { port: appPort, use: "the app (PORT)" },
    ...(embeddedData || localEngine ? [{ port: ports.pg, use: "Postgres (NIGHTSHIFT_PG_PORT)" }] : []),
    ...(embeddedData ? [{ port: ports.rest, use: "the Supabase URL (NIGHTSHIFT_REST_PORT)" }] : []),
    ...(process.env.ANTHROPIC_API_KEY ? [] : [{ port: ports.claude, use: "the Claude double (NIGHTSHIFT_CLAUDE_PORT)" }]),
    ...(localEngine ? [{ port: ports.engine, use: "the Inngest engine (NIGHTSHIFT_ENGINE_PORT)" }] : []),
  ]);

  // Data: embedded Postgres + PostgREST unless a Supabase project is configured.
  let databaseUrl: string | undefined;
  if (process.env.SUPABASE_URL && process.env.SUPABASE_SECRET_KEY) {
    console.log(`[dev] using Supabase at ${process.env.SUPABASE_URL}`);
  } else {
    const stack = await startDataStack({
      dataDir,
      pgPort: ports.pg,
      restPort: ports.rest,
      persistent: true,
      log: log("db"),
    });
    running.push({ name: "data stack", stop: () => stack.stop() });
    env.SUPABASE_URL = stack.supabaseUrl;
    env.SUPABASE_SECRET_KEY = stack.secretKey;
    databaseUrl = stack.databaseUrl;
    // `npm run apikey` finds the local API here, whatever port this run chose (NIGHTSHIFT_REST_PORT).
    await writeFile(join(dataDir, "local-supabase.json"), JSON.stringify({ url: stack.supabaseUrl }), { mode: 0o600 });
  }

  // Claude: the offline double unless a real key is configured.
  if (process.env.ANTHROPIC_API_KEY) {
    console.log("[dev] using the real Claude API (ANTHROPIC_API_KEY is set)");
  } else {
    // Batches are kept in the data directory: a batch task in flight survives a restart.
    const double = await startClaudeDouble({ port: ports.claude, dataDir: join(dataDir, "claude"), log: log("claude") });
    running.push({ name: "claude double", stop: () => double.stop() });
    env.ANTHROPIC_BASE_URL = double.url;
  }

  // Inngest: the local engine unless a dev server or Inngest Cloud is configured.
  let engine: Awaited<ReturnType<typeof startEngine>> | undefined;
  if (process.env.INNGEST_DEV || process.env.INNGEST_SIGNING_KEY) {
    console.log(`[dev] using Inngest at ${process.env.INNGEST_DEV ?? process.env.INNGEST_BASE_URL ?? "Inngest Cloud"}`);
  } else {
    if (!databaseUrl) {
      // Data is hosted, but runs still need a durable store here: an embedded Postgres just for the engine.
      const pg = await startPostgres({
        dataDir: join(dataDir, "engine-postgres"),
        port: ports.pg,
        persistent: true,
      });
      running.push({ name: "engine postgres", stop: () => pg.stop() });
      databaseUrl = pg.url();
    }
    // Due work resumes at once, but a call the app refuses (next dev not listening yet) waits without
    // counting as an attempt (local/engine/dispatch.ts).
    // The journal beside the rest of the data, so a restart (or a reboot) finds what was acknowledged from it.
    engine = await startEngine({
      port: ports.engine,
      databaseUrl,
      journalDir: process.env.INNGEST_ENGINE_JOURNAL_DIR || join(dataDir, "engine-journal"),
      log: log("engine"),
      // Another engine took the database (this one lost its lock and stopped itself): the stack goes down with it —
      // unless it is already going down (shutdown() called again exits at once, cutting the first one short).
      onFatal: () => {
        if (stopping) process.exitCode = 1;
        else void shutdown(1);
      },
    });
    running.push({ name: "engine", stop: () => engine!.stop() });
    env.INNGEST_DEV = engine.url;
  }
  // The origin the app registers for /api/inngest, pinned to its own address. Unpinned, the SDK takes it from the
  // Host header of whoever sends the sync — and in dev mode an out-of-band sync (a bare PUT) needs no signature, so
  // one forged `PUT /api/inngest` with `Host: elsewhere` moved every run's calls (and their data) there.
  env.INNGEST_SERVE_ORIGIN = process.env.INNGEST_SERVE_ORIGIN || `http://127.0.0.1:${appPort}`;

  // Console sign-in: generated once and kept in the data folder unless configured.
  const console_ = await localConsoleCredentials();
  env.NIGHTSHIFT_OPERATOR_PASSWORD = console_.password;
  env.NIGHTSHIFT_SESSION_SECRET = console_.sessionSecret;

  const supabaseUrl = env.SUPABASE_URL ?? process.env.SUPABASE_URL!;
  const secretKey = env.SUPABASE_SECRET_KEY ?? process.env.SUPABASE_SECRET_KEY!;
  const apiKey = await localApiKey(supabaseUrl, secretKey);

  // The stack may already be going down (the engine lost its lock while this start was under way): a next dev spawned
  // now would outlive the launcher (shutdown looks for it only once).
  if (stopping) return;
  next = spawn(join(root, "node_modules/.bin/next"), ["dev", "-p", String(appPort), "-H", "127.0.0.1"], {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: "inherit",
    detached: true,
  });
  next.on("exit", (code) => {
    if (!stopping) {
      console.error(`[dev] next dev exited (${code ?? "signal"})`);
      void shutdown(code ?? 1);
    }
  });

  // Recorded so that, if this launcher is killed with -9, the next start ends it (local/dev-processes.ts).
  if (next.pid) await recordProcess(dataDir, "next dev", next.pid, true);

  const appUrl = `http://127.0.0.1:${appPort}`;
  // "running" only once our own next dev answers (the port was free, and the child must still be alive).
  await waitFor(
    async () => {
      if (!next || next.exitCode !== null || next.signalCode !== null) throw new Error("next dev exited");
      return (await fetch(`${appUrl}/api/inngest`)).ok;
    },
    180_000,
    "next dev to answer /api/inngest",
  );
  if (engine) await engine.sync(`${appUrl}/api/inngest`);

  console.log(`
  Nightshift is running (offline parts: ${[
    !process.env.SUPABASE_URL && "Postgres+PostgREST",
    engine && "Inngest engine",
    !process.env.ANTHROPIC_API_KEY && "Claude double",
  ]
    .filter(Boolean)
    .join(", ")})

    Console        ${appUrl}   (sign in with the operator password below)
    Review queue   ${appUrl}/review
    Tasks API      ${appUrl}/api/tasks
    Supabase URL   ${supabaseUrl}
    ${engine ? `Inngest engine ${engine.url}   (runs: ${engine.url}/v0/runs)` : ""}
    ${env.ANTHROPIC_BASE_URL ? `Claude double  ${env.ANTHROPIC_BASE_URL}` : ""}

    Operator password  ${console_.password}${process.env.NIGHTSHIFT_OPERATOR_PASSWORD ? "  (from your environment)" : ""}
    Local API key      ${apiKey}
    Try:  curl -X POST ${appUrl}/api/tasks -H "Authorization: Bearer ${apiKey}" \\
            -H "Content-Type: application/json" -d '{"agent":"research","prompt":"Hello"}'

  Ctrl-C stops everything; data and in-flight runs are kept in ${dataDir}.
`);
}

/** The console's operator password and session secret: from the environment, or generated once and kept. */
async function localConsoleCredentials(): Promise<{ password: string; sessionSecret: string }> {
  const file = join(dataDir, "local-console.json");
  const saved = existsSync(file)
    ? (JSON.parse(await readFile(file, "utf8")) as { password: string; sessionSecret: string })
    : { password: randomBytes(12).toString("base64url"), sessionSecret: randomBytes(32).toString("base64url") };
  if (!existsSync(file)) await writeFile(file, JSON.stringify(saved), { mode: 0o600 });
  return {
    password: process.env.NIGHTSHIFT_OPERATOR_PASSWORD || saved.password,
    sessionSecret: process.env.NIGHTSHIFT_SESSION_SECRET || saved.sessionSecret,
  };
}

/** The local API key: created once, kept in the git-ignored data folder so restarts print the same key. */
async function localApiKey(url: string, secretKey: string): Promise<string> {
  const file = join(dataDir, "local-api-key.json");
  const admin = createClient(url, secretKey, {
    auth: { persistSession: false, autoRefreshToken: false },
    realtime: { transport: WebSocket as never },
  });
  if (existsSync(file)) {
    const saved = JSON.parse(await readFile(file, "utf8")) as { id: string; key: string };
    const { data } = await admin.from("api_keys").select("id").eq("id", saved.id).is("revoked_at", null).maybeSingle();
    if (data) return saved.key;
  }
  const { createApiKey } = await import("../lib/api-keys");
  const created = await createApiKey(admin as never, "local development");
  await writeFile(file, JSON.stringify(created), { mode: 0o600 });
  return created.key;
}

async function waitFor(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await check()) return;
    } catch {
      /* not up yet */
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

main().catch(async (err: unknown) => {
  console.error("[dev] failed to start:", err instanceof Error ? err.message : err);
  await shutdown(1);
});
