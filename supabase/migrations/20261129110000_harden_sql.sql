-- Hardening what Supabase's security advisor flags (issue 11, finding 7).
--
-- 1. Every function in public gets a fixed search_path (advisor lint 0011 "function_search_path_mutable"): a
--    function that resolves names through the caller's search_path can be steered to another schema's objects.
--    Existing functions use unqualified names, so they get `public, pg_temp` (pg_temp last, as the PostgreSQL
--    docs advise for SECURITY DEFINER); new functions pin `search_path = ''` and qualify names.
--    tests/integration/db/search-path.test.ts fails on any function in public without one.
-- 2. The API roles anon and authenticated get no table or sequence privileges in public. The app talks to
--    PostgREST only with the secret (service_role) key; RLS already kept anon from every row, but PostgREST's
--    OpenAPI root (`GET /rest/v1/`) lists every table a role may select, so anon could read the whole schema.
--    Without the grants the root lists nothing to anon, and a table someone forgets RLS on is still closed.
--    The default privileges change too, so tables created by later migrations start closed as well.
do $$
declare
  f record;
begin
  for f in
    select p.oid::regprocedure as sig
      from pg_proc p
      join pg_namespace n on n.oid = p.pronamespace
     where n.nspname = 'public'
       and p.prokind in ('f', 'p')
       and not exists (select 1 from unnest(coalesce(p.proconfig, '{}')) c where c like 'search_path=%')
       -- functions an extension installed belong to that extension
       and not exists (select 1 from pg_depend d where d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e')
  loop
    execute format('alter function %s set search_path = public, pg_temp', f.sig);
  end loop;
end
$$;

revoke all on all tables in schema public from anon, authenticated;
revoke all on all sequences in schema public from anon, authenticated;
alter default privileges for role postgres in schema public revoke all on tables from anon, authenticated;
alter default privileges for role postgres in schema public revoke all on sequences from anon, authenticated;
