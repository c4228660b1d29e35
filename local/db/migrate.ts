// Applies the Supabase bootstrap (local/db/roles.sql, local/db/bootstrap.sql), then supabase/migrations/*.sql in filename order (each once, recorded in
// supabase_migrations.schema_migrations in the same transaction as the file), then supabase/seed.sql — the same
// files `supabase db push` applies to a hosted project. Safe to run on every start: a second run changes nothing.
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
export const ROLES_SQL = join(ROOT, "local/db/roles.sql");
export const BOOTSTRAP_SQL = join(ROOT, "local/db/bootstrap.sql");
export const MIGRATIONS_DIR = join(ROOT, "supabase/migrations");
export const SEED_SQL = join(ROOT, "supabase/seed.sql");

// Same file-name rule as the Supabase CLI: `<version>_<name>.sql`, version = digits.
const MIGRATION_FILE = /^(\d+)_(.+)\.sql$/;

export interface MigrateOptions {
  seed: boolean;
  migrationsDir?: string;
  seedFile?: string;
  log?: (line: string) => void;
}

export interface MigrateResult {
  /** Versions applied by this call, in order (empty when the database was already current). */
  applied: string[];
}

export async function migrate(databaseUrl: string, opts: MigrateOptions): Promise<MigrateResult> {
  const migrationsDir = opts.migrationsDir ?? MIGRATIONS_DIR;
  const files = (await readdir(migrationsDir)).filter((f) => f.endsWith(".sql")).sort();
  const migrations = files.map((file) => {
    const m = MIGRATION_FILE.exec(file);
    if (!m) throw new Error(`migrate: ${file} is not named <version>_<name>.sql`);
    return { file, version: m[1]!, name: m[2]! };
  });
  const dup = migrations.find((m, i) => migrations.findIndex((o) => o.version === m.version) !== i);
  if (dup) throw new Error(`migrate: two migrations share version ${dup.version}`);

  const client = new pg.Client({ connectionString: databaseUrl });
  client.on("error", () => {}); // a server shutting down mid-idle must not crash the process
  await client.connect();
  const applied: string[] = [];
  try {
    // Two starters migrating the same database wait for each other instead of interleaving.
    await client.query("select pg_advisory_lock(hashtext('nightshift.migrate'))");
    // A simple-protocol multi-statement query runs as one implicit transaction.
    await client.query(await readFile(ROLES_SQL, "utf8"));
    // The per-database bootstrap runs once, before the first migration (see the note in bootstrap.sql); the
    // supabase_migrations schema it ends by creating marks it done.
    const { rows } = await client.query<{ fresh: boolean }>(
      "select to_regnamespace('supabase_migrations') is null as fresh",
    );
    if (rows[0]!.fresh) {
      await client.query(await readFile(BOOTSTRAP_SQL, "utf8"));
      opts.log?.("bootstrapped the Supabase schemas and grants");
    }

    const done = new Set(
      (await client.query<{ version: string }>("select version from supabase_migrations.schema_migrations")).rows.map(
        (r) => r.version,
      ),
    );
    for (const m of migrations) {
      if (done.has(m.version)) continue;
      const sql = await readFile(join(migrationsDir, m.file), "utf8");
      await inTransaction(client, m.file, async () => {
        await client.query(sql);
        await client.query("insert into supabase_migrations.schema_migrations (version, name) values ($1, $2)", [
          m.version,
          m.name,
        ]);
      });
      applied.push(m.version);
      opts.log?.(`migrated ${m.file}`);
    }

    if (opts.seed) {
      const seedFile = opts.seedFile ?? SEED_SQL;
      const seed = await readFile(seedFile, "utf8").catch((e: NodeJS.ErrnoException) => {
        if (e.code === "ENOENT") return null;
        throw e;
      });
      if (seed !== null) await inTransaction(client, "seed.sql", () => client.query(seed));
    }

    // A running PostgREST reloads its schema cache (new tables, functions, grants).
    await client.query("notify pgrst, 'reload schema'");
  } finally {
    await client.end().catch(() => {});
  }
  return { applied };
}

async function inTransaction(client: pg.Client, what: string, fn: () => Promise<unknown>): Promise<void> {
  await client.query("begin");
  try {
    await fn();
    await client.query("commit");
  } catch (e) {
    await client.query("rollback").catch(() => {});
    const err = e as Error & { position?: string };
    throw new Error(`migrate: ${what} failed: ${err.message}${err.position ? ` (at character ${err.position})` : ""}`, {
      cause: e,
    });
  }
}
