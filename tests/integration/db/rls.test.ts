// Row Level Security keeps the anon (publishable) key out of every table and every function, through the real
// PostgREST and supabase-js; the secret key reads the same rows. Tables and functions are listed from pg_catalog,
// so a table or function added by a later migration is covered without touching this file.
import type { SupabaseClient } from "@supabase/supabase-js";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createTestSupabase, type TestSupabase } from "../../support/supabase";
import { sql } from "./sql";

let sb: TestSupabase;
let anon: SupabaseClient;
let admin: SupabaseClient;
let tables: { name: string; rls: boolean }[];

// One row in every table, so "anon sees nothing" is not trivially true. Each migration's tables get their
// fixture rows from a module in rls-fixtures/ (foundation.ts runs first and creates the fixture task
// 00000000-0000-4000-8000-00000000f001 other fixtures may reference).
const fixtureModules = import.meta.glob<{ insertFixtures(url: string): Promise<void> }>("./rls-fixtures/*.ts", {
  eager: true,
});

async function insertFixtures(url: string) {
  const names = Object.keys(fixtureModules).sort((a, b) =>
    a.endsWith("/foundation.ts") ? -1 : b.endsWith("/foundation.ts") ? 1 : a.localeCompare(b),
  );
  for (const name of names) await fixtureModules[name]!.insertFixtures(url);
}

async function tableState(url: string, table: string) {
  const [row] = await sql<{ n: string; h: string | null }>(
    url,
    `select count(*)::text as n, md5(string_agg(t::text, '|' order by t::text)) as h from public.${quoteIdent(table)} t`,
  );
  return row!;
}
const quoteIdent = (s: string) => `"${s.replaceAll('"', '""')}"`;

beforeAll(async () => {
  sb = await createTestSupabase();
  anon = sb.client(sb.anonKey) as unknown as SupabaseClient;
  admin = sb.client(sb.secretKey) as unknown as SupabaseClient;
  await insertFixtures(sb.databaseUrl);
  tables = (
    await sql<{ name: string; rls: boolean }>(
      sb.databaseUrl,
      `select c.relname as name, c.relrowsecurity as rls
         from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = 'public' and c.relkind in ('r', 'p')
        order by c.relname`,
    )
  ).map((t) => ({ name: t.name, rls: t.rls }));
});
afterAll(async () => {
  await sb?.stop();
});

describe("row level security", () => {
  test("is enabled on every table in schema public", () => {
    expect(tables.length).toBeGreaterThanOrEqual(4);
    expect(tables.filter((t) => !t.rls).map((t) => t.name)).toEqual([]);
  });

  test("no view in public bypasses RLS (views must be security_invoker)", async () => {
    const unsafe = await sql<{ name: string }>(
      sb.databaseUrl,
      `select c.relname as name from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = 'public' and c.relkind in ('v', 'm')
          and not coalesce('security_invoker=true' = any(c.reloptions) or 'security_invoker=on' = any(c.reloptions), false)`,
    );
    expect(unsafe).toEqual([]);
  });

  test("the anon key reads no rows from any table, though every table has rows the secret key reads", async () => {
    for (const { name } of tables) {
      const { n } = await tableState(sb.databaseUrl, name);
      expect(Number(n), `table ${name} needs a fixture row in tests/integration/db/rls-fixtures/`).toBeGreaterThan(0);

      const asAnon = await anon.from(name).select("*");
      if (asAnon.error) expect(asAnon.error.code, `${name}: ${asAnon.error.message}`).toBe("42501");
      else expect(asAnon.data, `anon read rows from ${name}`).toEqual([]);

      const asAdmin = await admin.from(name).select("*");
      expect(asAdmin.error, name).toBeNull();
      expect(asAdmin.data?.length, name).toBe(Number(n));
    }
  });

  test("the anon key cannot insert, update or delete in any table", async () => {
    for (const { name } of tables) {
      const before = await tableState(sb.databaseUrl, name);
      // A copy of a real row (minus identity/generated columns): only RLS stands between anon and the insert.
      const writable = await sql<{ attname: string }>(
        sb.databaseUrl,
        `select a.attname from pg_attribute a
          where a.attrelid = ('public.' || quote_ident($1))::regclass and a.attnum > 0 and not a.attisdropped
            and a.attidentity = '' and a.attgenerated = ''`,
        [name],
      );
      const [row] = await sql<Record<string, unknown>>(
        sb.databaseUrl,
        `select ${writable.map((c) => quoteIdent(c.attname)).join(", ")} from public.${quoteIdent(name)} limit 1`,
      );
      const ins = await anon.from(name).insert(JSON.parse(JSON.stringify(row)));
      expect(ins.error?.code, `anon insert into ${name}`).toBe("42501");

      const firstColumn = writable[0]!.attname;
      const upd = await anon.from(name).update({ [firstColumn]: row![firstColumn] }).not(firstColumn, "is", null).select();
      if (upd.error) expect(upd.error.code).toBe("42501");
      else expect(upd.data, `anon updated ${name}`).toEqual([]);

      const del = await anon.from(name).delete().not(firstColumn, "is", null).select();
      if (del.error) expect(del.error.code).toBe("42501");
      else expect(del.data, `anon deleted from ${name}`).toEqual([]);

      expect(await tableState(sb.databaseUrl, name), `${name} changed under the anon key`).toEqual(before);
    }
  });

  test("no function in public is executable by anon or authenticated; every rpc is refused to the anon key", async () => {
    const fns = await sql<{ name: string; args: string[] | null; is_trigger: boolean; anon: boolean; authn: boolean; service: boolean }>(
      sb.databaseUrl,
      `select p.proname as name,
              (select array_agg(a) from unnest(p.proargnames[1:p.pronargs]) a) as args,
              p.prorettype = 'trigger'::regtype as is_trigger,
              has_function_privilege('anon', p.oid, 'execute') as anon,
              has_function_privilege('authenticated', p.oid, 'execute') as authn,
              has_function_privilege('service_role', p.oid, 'execute') as service
         from pg_proc p join pg_namespace n on n.oid = p.pronamespace
        where n.nspname = 'public' and p.prokind = 'f'
        order by p.proname`,
    );
    expect(fns.length).toBeGreaterThan(0);
    expect(fns.filter((f) => f.anon || f.authn).map((f) => f.name)).toEqual([]);

    for (const f of fns.filter((f) => !f.is_trigger)) {
      const args = Object.fromEntries((f.args ?? []).map((a) => [a, null]));
      const asAnon = await anon.rpc(f.name, args);
      expect(asAnon.error?.code, `anon rpc ${f.name}`).toBe("42501");

      // The secret key reaches the same function (it may reject the null arguments, but not for lack of rights).
      expect(f.service, f.name).toBe(true);
      const asAdmin = await admin.rpc(f.name, args);
      expect(asAdmin.error?.code ?? null, `service rpc ${f.name}`).not.toBe("42501");
      expect(asAdmin.error?.code ?? null, `service rpc ${f.name}`).not.toBe("PGRST202");
    }
  });
});
