// Builds the template database every test database is cloned from: the Supabase bootstrap, every migration
// and the seed, applied once per test run by the same code `npm run dev` uses.
import { runSql } from "../../local/db/embedded-postgres";
import { migrate } from "../../local/db/migrate";

export const TEMPLATE_DB = "nightshift_template";

export async function prepareTemplate(serverUrl: string, name: string): Promise<void> {
  await runSql(serverUrl, `DROP DATABASE IF EXISTS ${name}`);
  await runSql(serverUrl, `CREATE DATABASE ${name}`);
  await migrate(serverUrl.replace(/\/[^/]*$/, `/${name}`), { seed: true });
}
