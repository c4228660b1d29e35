// One embedded Postgres per test run. Migrations and seed are applied once into a template database;
// each test file then clones it (CREATE DATABASE ... TEMPLATE), which takes milliseconds.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestProject } from "vitest/node";
import { startPostgres } from "../../local/db/embedded-postgres";
import { freePort } from "../../local/ports";
import { prepareTemplate, TEMPLATE_DB } from "./template";

declare module "vitest" {
  export interface ProvidedContext {
    /** Superuser URL of the run's Postgres server, database `postgres`. */
    pgServerUrl: string;
    templateDb: string;
  }
}

export default async function setup(project: TestProject) {
  const dataDir = await mkdtemp(join(tmpdir(), "nightshift-test-pg-"));
  const pg = await startPostgres({ dataDir, port: await freePort(), persistent: false });
  await prepareTemplate(pg.url(), TEMPLATE_DB);
  project.provide("pgServerUrl", pg.url());
  project.provide("templateDb", TEMPLATE_DB);
  return async () => {
    await pg.stop();
    await rm(dataDir, { recursive: true, force: true });
  };
}
