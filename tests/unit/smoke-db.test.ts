import { expect, test } from "vitest";
import pg from "pg";
import { createTestDatabase } from "../support/postgres";

test("a test database is cloned from the template and answers", async () => {
  const db = await createTestDatabase();
  const c = new pg.Client({ connectionString: db.url });
  await c.connect();
  const r = await c.query("select current_database() as d");
  expect(r.rows[0].d).toBe(db.name);
  await c.end();
  await db.drop();
});
