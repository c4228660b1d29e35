// The deploy path, tested rather than only documented: the real Supabase CLI (npm `supabase`) pushes
// supabase/migrations and the seed to a fresh database — holding only what a hosted Supabase project pre-creates
// (roles, the auth and extensions schemas) — and the schema it builds equals the one the dev stack builds
// (local/db/migrate.ts, the template every test clones).
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { promisify } from "node:util";
import { afterAll, expect, test } from "vitest";
import { inject } from "vitest";
import { BOOTSTRAP_SQL, ROLES_SQL } from "../../../local/db/migrate";
import { createTestDatabase, type TestDatabase } from "../../support/postgres";
import { sql } from "./sql";

const dbs: TestDatabase[] = [];
afterAll(async () => {
  await Promise.all(dbs.map((d) => d.drop()));
});

/** Everything the migrations define in public (and auth), as sorted text lines: comparable and readable in a diff. */
async function schemaOf(url: string): Promise<string[]> {
  const rows = await sql<{ x: string }>(
    url,
    `select x from (
       select 'rel ' || c.oid::regclass::text || ' ' || c.relkind::text || ' rls=' || c.relrowsecurity || ' acl=' || coalesce(c.relacl::text, '') as x
         from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = 'public'
       union all
       select 'col ' || a.attrelid::regclass::text || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
              || case when a.attnotnull then ' not null' else '' end || ' default=' || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
         from pg_attribute a join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace
         left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
        where n.nspname = 'public' and a.attnum > 0 and not a.attisdropped
       union all
       select 'con ' || conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid)
         from pg_constraint where connamespace = 'public'::regnamespace
       union all
       select 'idx ' || indexrelid::regclass::text || ' ' || pg_get_indexdef(indexrelid)
         from pg_index i join pg_class c on c.oid = i.indexrelid where c.relnamespace = 'public'::regnamespace
       union all
       select 'fn ' || p.oid::regprocedure::text || ' acl=' || coalesce(p.proacl::text, '') || ' cfg=' || coalesce(p.proconfig::text, '') || ' src=' || md5(p.prosrc)
         from pg_proc p where p.pronamespace in ('public'::regnamespace, 'auth'::regnamespace)
       union all
       select 'trg ' || tgrelid::regclass::text || ' ' || tgname from pg_trigger t
         join pg_class c on c.oid = t.tgrelid where c.relnamespace = 'public'::regnamespace and not t.tgisinternal
       union all
       select 'pol ' || schemaname || '.' || tablename || ' ' || policyname || ' ' || cmd || ' ' || coalesce(qual, '') from pg_policies
       union all
       select 'type ' || t.oid::regtype::text || ' ' || coalesce((select string_agg(enumlabel, ',' order by enumsortorder) from pg_enum e where e.enumtypid = t.oid), '')
         from pg_type t where t.typnamespace = 'public'::regnamespace and t.typtype in ('e', 'd')
       union all
       select 'agent ' || a.id || ' ' || a.model || ' ' || a.daily_budget_micros from public.agents a
     ) s order by x`,
  );
  return rows.map((r) => r.x);
}

test("`supabase db push --db-url` applies the migrations and the seed; the schema equals the dev stack's", async () => {
  // A fresh database with what a hosted Supabase project has before any migration: roles, auth and extensions
  // schemas, the default grants (the local bootstrap, minus the migration history the CLI creates itself).
  const fresh = await createTestDatabase({ empty: true });
  dbs.push(fresh);
  await sql(fresh.url, await readFile(ROLES_SQL, "utf8"));
  const bootstrap = (await readFile(BOOTSTRAP_SQL, "utf8")).replace(/create schema if not exists supabase_migrations;[\s\S]*$/, "");
  expect(bootstrap).not.toMatch(/create (schema|table)[^;]*supabase_migrations/);
  await sql(fresh.url, bootstrap);

  const cli = await promisify(execFile)(
    process.execPath,
    ["node_modules/supabase/dist/supabase.js", "db", "push", "--db-url", `${fresh.url}?sslmode=disable`, "--include-seed", "--include-all", "--yes"],
    { cwd: process.cwd(), env: { ...process.env, SUPABASE_TELEMETRY_DISABLED: "1", DO_NOT_TRACK: "1" }, timeout: 120_000 },
  ).catch((e: { stdout?: string; stderr?: string; message: string }) => {
    throw new Error(`supabase db push failed: ${e.message}\n${e.stdout ?? ""}\n${e.stderr ?? ""}`);
  });
  expect(`${cli.stdout}\n${cli.stderr}`).toMatch(/20261126081500_foundation/);

  // The template database is what the dev stack builds (migrate() with the seed).
  const dev = inject("pgServerUrl").replace(/\/[^/]*$/, `/${inject("templateDb")}`);
  const [pushed, built] = await Promise.all([schemaOf(fresh.url), schemaOf(dev)]);
  expect(pushed.length).toBeGreaterThan(100);
  expect(pushed).toEqual(built);

  // The CLI recorded every migration in the same history table the dev stack uses.
  const history = await sql<{ version: string }>(fresh.url, "select version from supabase_migrations.schema_migrations order by version");
  const devHistory = await sql<{ version: string }>(dev, "select version from supabase_migrations.schema_migrations order by version");
  expect(history.map((h) => h.version)).toEqual(devHistory.map((h) => h.version));
}, 180_000);
