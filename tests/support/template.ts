// Builds the template database every test database is cloned from.
import { runSql } from "../../local/db/embedded-postgres";

export const TEMPLATE_DB = "nightshift_template";

export async function prepareTemplate(serverUrl: string, name: string): Promise<void> {
  await runSql(serverUrl, `DROP DATABASE IF EXISTS ${name}`);
  await runSql(serverUrl, `CREATE DATABASE ${name}`);
  // TODO(data stack): bootstrap Supabase roles + migrations + seed into the template here.
}
