// A fresh database per test file, cloned from the migrated template.
import { randomBytes } from "node:crypto";
import { inject } from "vitest";
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
