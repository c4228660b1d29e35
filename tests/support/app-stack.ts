// The whole system for end-to-end tests, each part real and separately killable:
//   - a private Supabase (cloned database + PostgREST) and the offline Claude double, in the test process;
//   - the local Inngest engine as its own process (local/engine/main.ts);
//   - the app as `next start` on the production build from tests/e2e/build.ts, in its own process group.
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { freePort } from "../../local/ports";
import { startClaudeDouble, type ClaudeDouble } from "../../local/claude/server";
import { createApiKey } from "../../lib/api-keys";
import { E2E_DIST_DIR } from "./dist-dir";
import { createTestSupabase, type TestSupabase } from "./supabase";

const root = fileURLToPath(new URL("../..", import.meta.url));

export interface AppStack {
  appUrl: string;
  engineUrl: string;
  sb: TestSupabase;
  double: ClaudeDouble;
  apiKey: string;
  /** SIGKILL the app and the engine at once, like a power cut. */
  crash(): Promise<void>;
  /** Start the engine and the app again on the same database and ports, and re-sync. */
  restart(): Promise<void>;
  /** What the child processes printed (for failure messages). */
  output(): string;
  stop(): Promise<void>;
}

export async function startAppStack(opts: { env?: Record<string, string> } = {}): Promise<AppStack> {
  const sb = await createTestSupabase();
  const double = await startClaudeDouble();
  const enginePort = await freePort();
  const appPort = await freePort();
  const engineUrl = `http://127.0.0.1:${enginePort}`;
  const appUrl = `http://127.0.0.1:${appPort}`;
  const lines: string[] = [];
  let engine: ChildProcess | undefined;
  let app: ChildProcess | undefined;

  const capture = (name: string, child: ChildProcess) => {
    for (const stream of [child.stdout, child.stderr]) {
      stream?.setEncoding("utf8");
      stream?.on("data", (chunk: string) => {
        for (const l of chunk.split("\n")) if (l.trim()) lines.push(`[${name}] ${l}`);
        if (lines.length > 2000) lines.splice(0, lines.length - 2000);
      });
    }
  };

  async function startEngineProcess(): Promise<void> {
    engine = spawn(
      process.execPath,
      ["--import", "tsx", "local/engine/main.ts", "--database-url", sb.databaseUrl, "--port", String(enginePort)],
      { cwd: root, stdio: ["ignore", "pipe", "pipe"], detached: true },
    );
    capture("engine", engine);
    await waitUntil(async () => (await fetch(`${engineUrl}/health`)).ok, 30_000, "the engine to listen", lines);
  }

  async function startApp(): Promise<void> {
    app = spawn(process.execPath, ["node_modules/next/dist/bin/next", "start", "-p", String(appPort), "-H", "127.0.0.1"], {
      cwd: root,
      stdio: ["ignore", "pipe", "pipe"],
      // Its own process group: `next start` forks, and a kill must take every process with it.
      detached: true,
      env: {
        ...process.env,
        NODE_ENV: "production",
        NEXT_TELEMETRY_DISABLED: "1",
        NIGHTSHIFT_DIST_DIR: E2E_DIST_DIR,
        SUPABASE_URL: sb.supabaseUrl,
        SUPABASE_SECRET_KEY: sb.secretKey,
        ANTHROPIC_BASE_URL: double.url,
        ANTHROPIC_API_KEY: "",
        INNGEST_DEV: engineUrl,
        // Pinned as `npm run dev` pins it (local/dev.ts): a sync never takes the origin from a request's Host.
        INNGEST_SERVE_ORIGIN: appUrl,
        ...opts.env,
      },
    });
    capture("app", app);
    await waitUntil(async () => (await fetch(`${appUrl}/api/inngest`)).ok, 60_000, "next start to answer", lines);
    const sync = await fetch(`${appUrl}/api/inngest`, { method: "PUT" });
    if (!sync.ok) throw new Error(`sync failed: ${sync.status} ${await sync.text()}\n${lines.slice(-40).join("\n")}`);
  }

  const killGroup = (child: ChildProcess | undefined, signal: NodeJS.Signals) => {
    if (child?.pid && child.exitCode === null) {
      try {
        process.kill(-child.pid, signal);
      } catch {
        /* already gone */
      }
    }
  };
  const exited = (child: ChildProcess | undefined) =>
    child && child.exitCode === null && child.signalCode === null
      ? new Promise<void>((r) => child.once("exit", () => r()))
      : Promise.resolve();

  await startEngineProcess();
  await startApp();
  const apiKey = (await createApiKey(sb.admin, "e2e")).key;

  return {
    appUrl,
    engineUrl,
    sb,
    double,
    apiKey,
    async crash() {
      const done = Promise.all([exited(app), exited(engine)]);
      killGroup(app, "SIGKILL");
      killGroup(engine, "SIGKILL");
      await done;
    },
    async restart() {
      await startEngineProcess();
      await startApp();
    },
    output: () => lines.join("\n"),
    async stop() {
      const done = Promise.all([exited(app), exited(engine)]);
      killGroup(app, "SIGTERM");
      killGroup(engine, "SIGTERM");
      await Promise.race([done, new Promise((r) => setTimeout(r, 5000))]);
      killGroup(app, "SIGKILL");
      killGroup(engine, "SIGKILL");
      await double.stop();
      await sb.stop();
    },
  };
}

/** Polls until `check` is true; fails with the last lines the processes printed. */
export async function waitUntil(
  check: () => Promise<boolean>,
  timeoutMs: number,
  what: string,
  lines: string[] = [],
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      if (await check()) return;
    } catch (e) {
      lastError = e;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}` +
          (lastError instanceof Error ? ` (last error: ${lastError.message})` : "") +
          (lines.length ? `\n${lines.slice(-40).join("\n")}` : ""),
      );
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
