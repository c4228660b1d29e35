// The embedded Postgres is the major version hosted Supabase runs (17), supabase/config.toml says the same, and a data
// folder left by another major version is refused with what to do instead of Postgres's terse start failure.
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, test } from "vitest";
import { assertSameMajor, embeddedMajor } from "../../local/db/embedded-postgres";

test("the embedded server is PostgreSQL 17, matching supabase/config.toml", async () => {
  expect(embeddedMajor()).toBe(17);
  expect(await readFile("supabase/config.toml", "utf8")).toMatch(/^major_version = 17$/m);
});

test("a data folder of another major version is refused with a way out", async () => {
  const dir = await mkdtemp(join(tmpdir(), "ns-pgver-"));
  try {
    await writeFile(join(dir, "PG_VERSION"), "18\n");
    expect(() => assertSameMajor(dir)).toThrow(/holds a PostgreSQL 18 database, but the embedded server is PostgreSQL 17.*NIGHTSHIFT_DATA_DIR/s);
    await writeFile(join(dir, "PG_VERSION"), "17\n");
    expect(() => assertSameMajor(dir)).not.toThrow();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
