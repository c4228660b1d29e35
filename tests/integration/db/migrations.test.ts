// The migrations and the Supabase bootstrap apply to an empty database, exactly once, atomically.
import { mkdtemp, readdir, rm, writeFile, copyFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { MIGRATIONS_DIR, migrate } from "../../../local/db/migrate";
import { createTestDatabase, type TestDatabase } from "../../support/postgres";
import { sql } from "./sql";

const dbs: TestDatabase[] = [];
async function emptyDb() {
  const db = await createTestDatabase({ empty: true });
  dbs.push(db);
  return db;
}
afterAll(async () => {
  await Promise.all(dbs.map((d) => d.drop()));
});

// Everything a migration can change, as one comparable value.
async function fingerprint(url: string) {
  const [row] = await sql<{ f: string }>(
    url,
    `select md5(string_agg(x, ',' order by x)) as f from (
       select 'rel:' || c.oid::regclass::text || ':' || c.relkind::text || ':' || c.relrowsecurity || ':' || coalesce(c.relacl::text, '')
         from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname in ('public', 'auth', 'extensions', 'supabase_migrations')
       union all
       select 'fn:' || p.oid::regprocedure::text || ':' || coalesce(p.proacl::text, '') || ':' || md5(p.prosrc)
         from pg_proc p join pg_namespace n on n.oid = p.pronamespace
        where n.nspname in ('public', 'auth')
       union all
       select 'acl:' || d.defaclrole::regrole::text || ':' || d.defaclobjtype::text || ':' || d.defaclacl::text from pg_default_acl d
       union all
       select 'mig:' || version || ':' || name || ':' || applied_at from supabase_migrations.schema_migrations
       union all
       select 'agent:' || a.id || ':' || a.daily_budget_micros || ':' || a.updated_at from public.agents a
     ) s(x)`,
  );
  return row!.f;
}

describe("migrate", () => {
  test("applies bootstrap, every migration and the seed to an empty database; a second run is a no-op", async () => {
    const db = await emptyDb();
    const files = (await readdir(MIGRATIONS_DIR)).filter((f) => f.endsWith(".sql")).sort();

    const first = await migrate(db.url, { seed: true });
    expect(first.applied).toEqual(files.map((f) => f.split("_")[0]));

    const recorded = await sql<{ version: string; name: string }>(
      db.url,
      "select version, name from supabase_migrations.schema_migrations order by version",
    );
    expect(recorded.map((r) => `${r.version}_${r.name}.sql`)).toEqual(files);

    const agents = await sql<{ id: string; daily_budget_micros: string }>(
      db.url,
      "select id, daily_budget_micros from public.agents order by id",
    );
    expect(agents).toEqual([
      { id: "content", daily_budget_micros: "1000000" },
      { id: "outreach", daily_budget_micros: "1000000" },
      { id: "research", daily_budget_micros: "2000000" },
    ]);

    const before = await fingerprint(db.url);
    const second = await migrate(db.url, { seed: true });
    expect(second.applied).toEqual([]);
    expect(await fingerprint(db.url)).toBe(before);
  });

  test("creates what Supabase pre-creates: API roles, auth helpers reading PostgREST's claims, default grants", async () => {
    const db = await emptyDb();
    await migrate(db.url, { seed: false });

    const roles = await sql<{ rolname: string; rolcanlogin: boolean; rolbypassrls: boolean; rolinherit: boolean }>(
      db.url,
      `select rolname, rolcanlogin, rolbypassrls, rolinherit from pg_roles
        where rolname in ('anon', 'authenticated', 'service_role', 'authenticator') order by rolname`,
    );
    expect(roles).toEqual([
      { rolname: "anon", rolcanlogin: false, rolbypassrls: false, rolinherit: false },
      { rolname: "authenticated", rolcanlogin: false, rolbypassrls: false, rolinherit: false },
      { rolname: "authenticator", rolcanlogin: true, rolbypassrls: false, rolinherit: false },
      { rolname: "service_role", rolcanlogin: false, rolbypassrls: true, rolinherit: false },
    ]);
    const [members] = await sql<{ ok: boolean }>(
      db.url,
      `select pg_has_role('authenticator', 'anon', 'member') and pg_has_role('authenticator', 'authenticated', 'member')
          and pg_has_role('authenticator', 'service_role', 'member') as ok`,
    );
    expect(members!.ok).toBe(true);

    const [claims] = await sql<{ uid: string; role: string; email: string }>(
      db.url,
      `select set_config('request.jwt.claims', '{"sub":"8a0c2b1e-6f44-4e8c-9a7e-2f6a1d3c5b70","role":"authenticated","email":"a@b.c"}', false),
              auth.uid()::text as uid, auth.role() as role, auth.jwt() ->> 'email' as email`,
    );
    expect(claims).toMatchObject({ uid: "8a0c2b1e-6f44-4e8c-9a7e-2f6a1d3c5b70", role: "authenticated", email: "a@b.c" });

    // A table a later migration creates is granted to service_role only: 20261129110000_harden_sql.sql takes the
    // API roles' default grants away, so anon never sees a new table (in PostgREST's root or otherwise).
    await sql(db.url, "create table public.later (id int primary key)");
    const [grants] = await sql<{ anon: boolean; service: boolean }>(
      db.url,
      `select has_table_privilege('anon', 'public.later', 'select') as anon,
              has_table_privilege('service_role', 'public.later', 'insert') as service`,
    );
    expect(grants).toEqual({ anon: false, service: true });
  });

  test("bootstraps several databases of one cluster concurrently (roles are cluster-wide)", async () => {
    const many = await Promise.all([emptyDb(), emptyDb(), emptyDb(), emptyDb()]);
    const results = await Promise.all(many.map((d) => migrate(d.url, { seed: true })));
    for (const r of results) expect(r.applied.length).toBeGreaterThan(0);
  });

  test("a failing migration is rolled back whole and not recorded", async () => {
    const db = await emptyDb();
    const dir = await mkdtemp(join(tmpdir(), "nightshift-migrations-"));
    try {
      for (const f of await readdir(MIGRATIONS_DIR)) await copyFile(join(MIGRATIONS_DIR, f), join(dir, f));
      await writeFile(
        join(dir, "99991231235959_broken.sql"),
        "create table public.half_done (id int);\nselect * from public.no_such_table;\n",
      );
      await expect(migrate(db.url, { seed: true, migrationsDir: dir })).rejects.toThrow(/99991231235959_broken\.sql/);
      const [state] = await sql<{ half: string | null; recorded: string }>(
        db.url,
        `select to_regclass('public.half_done')::text as half,
                (select count(*) from supabase_migrations.schema_migrations where version = '99991231235959')::text as recorded`,
      );
      expect(state).toEqual({ half: null, recorded: "0" });
      // The migrations before it stay applied, so fixing the file and re-running continues from there.
      await writeFile(join(dir, "99991231235959_broken.sql"), "create table public.half_done (id int);\n");
      const again = await migrate(db.url, { seed: true, migrationsDir: dir });
      expect(again.applied).toEqual(["99991231235959"]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
