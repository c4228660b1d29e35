// What Supabase's security advisor checks, on the migrated database (issue 11, finding 7). Both tests failed before
// 20261129110000_harden_sql.sql: 40 functions had no fixed search_path, and the PostgREST root listed every table
// to the anon key. Other migrations add functions all the time: this test is what keeps them pinned.
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createTestSupabase, type TestSupabase } from "../../support/supabase";
import { sql } from "./sql";

let sb: TestSupabase;
beforeAll(async () => {
  sb = await createTestSupabase();
}, 60_000);
afterAll(async () => {
  await sb?.stop();
});

describe("security advisor", () => {
  test("every function in public pins its search_path (lint 0011 function_search_path_mutable)", async () => {
    const fns = await sql<{ sig: string; config: string[] | null }>(
      sb.databaseUrl,
      `select p.oid::regprocedure::text as sig, p.proconfig as config
         from pg_proc p join pg_namespace n on n.oid = p.pronamespace
        where n.nspname = 'public' and p.prokind in ('f', 'p')
          and not exists (select 1 from pg_depend d where d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e')`,
    );
    expect(fns.length).toBeGreaterThan(10);
    const unpinned = fns.filter((f) => !(f.config ?? []).some((c) => c.startsWith("search_path="))).map((f) => f.sig);
    expect(unpinned, "functions without `set search_path = ''` (or an explicit schema list)").toEqual([]);
  });

  test("the PostgREST root lists no table or function to the anon key", async () => {
    const res = await fetch(`${sb.supabaseUrl}/rest/v1/`, { headers: { apikey: sb.anonKey, authorization: `Bearer ${sb.anonKey}` } });
    const text = await res.text();
    if (res.ok) {
      const spec = JSON.parse(text) as { paths?: Record<string, unknown>; definitions?: Record<string, unknown> };
      expect(Object.keys(spec.paths ?? {}).filter((p) => p !== "/")).toEqual([]);
      expect(Object.keys(spec.definitions ?? {})).toEqual([]);
    } else {
      expect(res.status).toBeGreaterThanOrEqual(400);
    }
    // The secret key still sees the schema (the app's own client is unaffected).
    const admin = await fetch(`${sb.supabaseUrl}/rest/v1/`, { headers: { apikey: sb.secretKey, authorization: `Bearer ${sb.secretKey}` } });
    expect(admin.ok).toBe(true);
    expect(Object.keys(((await admin.json()) as { paths: Record<string, unknown> }).paths)).toContain("/tasks");
  });

  test("anon and authenticated hold no privilege on any table or sequence in public", async () => {
    const rows = await sql<{ name: string }>(
      sb.databaseUrl,
      `select c.relname as name from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = 'public' and c.relkind in ('r', 'p', 'v', 'm', 'S')
          and (has_table_privilege('anon', c.oid, 'select, insert, update, delete')
               or has_table_privilege('authenticated', c.oid, 'select, insert, update, delete'))`,
    );
    expect(rows.map((r) => r.name)).toEqual([]);
  });
});
