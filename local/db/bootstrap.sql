-- What a Supabase project has before its first migration, recreated for the embedded Postgres: the API roles
-- PostgREST switches between, the `auth` and `extensions` schemas, the auth.* helpers that read the JWT claims
-- PostgREST puts in `request.jwt.claims`, and the grants Supabase gives on schema public. Modelled on
-- supabase/postgres `migrations/db/init-scripts/00000000000000-initial-schema.sql` and `...-auth-schema.sql`.
--
-- Idempotent, and safe to run concurrently against several databases of one cluster: roles are cluster-wide
-- (created once, "already exists" tolerated), while schemas, functions and default privileges are per database.
-- Hosted Supabase already has all of this; it is never part of supabase/migrations.

-- Each change is made only when the role is not already in the wanted state, and each in its own
-- subtransaction: two bootstraps racing on the same cluster-wide row either find it done or lose a race
-- ("already exists", "tuple concurrently updated") to a twin doing the identical change, which is then ignored.
do $$
declare
  -- role, wanted attributes, whether it logs in, whether it bypasses RLS
  spec constant text[][] := array[
    array['anon',          'nologin noinherit',            'f', 'f'],
    array['authenticated', 'nologin noinherit',            'f', 'f'],
    array['service_role',  'nologin noinherit bypassrls',  'f', 't'],
    array['authenticator', 'login noinherit',              't', 'f']
  ];
  r text;
  i int;
begin
  for i in 1 .. array_length(spec, 1) loop
    r := spec[i][1];
    begin
      if not exists (select 1 from pg_roles where rolname = r) then
        execute format('create role %I %s', r, spec[i][2]);
      elsif not exists (select 1 from pg_roles where rolname = r and not rolinherit
                          and rolcanlogin = (spec[i][3] = 't') and rolbypassrls = (spec[i][4] = 't')) then
        execute format('alter role %I %s', r, spec[i][2]);
      end if;
    exception when others then
      null;
    end;
  end loop;

  -- PostgREST connects as `authenticator` and `set role`s to the JWT's role. A local-only password: the embedded
  -- server listens on loopback and its superuser is postgres/postgres anyway.
  begin
    if (select rolpassword is null from pg_authid where rolname = 'authenticator') then
      alter role authenticator password 'authenticator';
    end if;
  exception when others then
    null;
  end;

  foreach r in array array['anon', 'authenticated', 'service_role'] loop
    begin
      if not exists (select 1 from pg_auth_members m
                      where m.roleid = r::regrole and m.member = 'authenticator'::regrole) then
        execute format('grant %I to authenticator', r);
      end if;
    exception when others then
      null;
    end;
  end loop;

  -- Short statement timeouts for the API roles, as Supabase sets them.
  begin
    if not exists (select 1 from pg_db_role_setting where setdatabase = 0 and setrole = 'anon'::regrole) then
      alter role anon set statement_timeout = '3s';
    end if;
    if not exists (select 1 from pg_db_role_setting where setdatabase = 0 and setrole = 'authenticated'::regrole) then
      alter role authenticated set statement_timeout = '8s';
    end if;
  exception when others then
    null;
  end;
end $$;

-- Fail loudly if a swallowed error above was a real one rather than a lost race.
do $$
begin
  if (select count(*) from pg_roles where rolname in ('anon', 'authenticated', 'service_role', 'authenticator')) <> 4
     or not (select rolbypassrls from pg_roles where rolname = 'service_role')
     or not (select rolcanlogin from pg_roles where rolname = 'authenticator')
     or not pg_has_role('authenticator', 'service_role', 'member')
     or not pg_has_role('authenticator', 'anon', 'member')
     or not pg_has_role('authenticator', 'authenticated', 'member') then
    raise exception 'bootstrap: the Supabase API roles are not in the expected state';
  end if;
end $$;

create schema if not exists extensions;
create schema if not exists auth;

grant usage on schema public     to postgres, anon, authenticated, service_role;
grant usage on schema extensions to postgres, anon, authenticated, service_role;
grant usage on schema auth       to anon, authenticated, service_role;

-- Everything `postgres` creates in public later is granted to the API roles, exactly as Supabase does: Row Level
-- Security, not a missing grant, is what keeps anon out of a table.
alter default privileges for role postgres in schema public grant all on tables    to anon, authenticated, service_role;
alter default privileges for role postgres in schema public grant all on sequences to anon, authenticated, service_role;
alter default privileges for role postgres in schema public grant all on functions to anon, authenticated, service_role;

-- The JWT helpers RLS policies use. PostgREST 12 sets `request.jwt.claims` to the verified token's payload.
create or replace function auth.jwt() returns jsonb
language sql stable as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim', true), ''),
    nullif(current_setting('request.jwt.claims', true), '')
  )::jsonb
$$;

create or replace function auth.uid() returns uuid
language sql stable as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.sub', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
  )::uuid
$$;

create or replace function auth.role() returns text
language sql stable as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.role', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
  )::text
$$;

grant execute on function auth.jwt(), auth.uid(), auth.role() to anon, authenticated, service_role;

-- Where migrations are recorded (the Supabase CLI uses the same table).
create schema if not exists supabase_migrations;
create table if not exists supabase_migrations.schema_migrations (
  version    text primary key,
  name       text not null,
  applied_at timestamptz not null default now()
);
