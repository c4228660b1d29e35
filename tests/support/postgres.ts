// A fresh database per test file, cloned from the migrated template (or empty, for the local engine's own schema).
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, inject } from "vitest";
import { runSql } from "../../local/db/embedded-postgres";

export interface TestDatabase {
  name: string;
  url: string;
  drop(): Promise<void>;
}

export async function createTestDatabase(opts: { empty?: boolean } = {}): Promise<TestDatabase> {
  const serverUrl = inject("pgServerUrl");
  const name = `t_${randomBytes(6).toString("hex")}`;
  await runSql(serverUrl, opts.empty ? `CREATE DATABASE ${name}` : `CREATE DATABASE ${name} TEMPLATE ${inject("templateDb")}`);
  const url = serverUrl.replace(/\/[^/]*$/, `/${name}`);
  return {
    name,
    url,
    drop: () => runSql(serverUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`),
  };
}

/**
 * Inside a describe block: an empty database of its own (the local engine's tests create their schema themselves)
 * and, with `dirPrefix`, a temporary directory — made before the block's tests (`each`: before each test) and
 * dropped / removed after. Read them from the returned object once the hooks ran (inside hooks and tests).
 */
export function useEmptyDatabase(o: { dirPrefix?: string; each?: boolean } = {}): { readonly db: TestDatabase; readonly dir: string } {
  const made: { db?: TestDatabase; dir?: string } = {};
  (o.each ? beforeEach : beforeAll)(async () => {
    made.db = await createTestDatabase({ empty: true });
    if (o.dirPrefix) made.dir = mkdtempSync(join(tmpdir(), o.dirPrefix));
  });
  (o.each ? afterEach : afterAll)(async () => {
    await made.db?.drop().catch(() => {});
    if (made.dir) rmSync(made.dir, { recursive: true, force: true });
    made.db = made.dir = undefined;
  });
  return {
    get db() {
      if (!made.db) throw new Error("useEmptyDatabase: read the database inside a hook or a test");
      return made.db;
    },
    get dir() {
      if (!made.dir) throw new Error("useEmptyDatabase: no directory (pass dirPrefix), or read outside a hook or a test");
      return made.dir;
    },
  };
}
