-- The per-database part of what a Supabase project has before its first migration, recreated for the embedded
-- Postgres: the `auth` and `extensions` schemas, the auth.* helpers that read the JWT claims PostgREST puts in
-- `request.jwt.claims`, and the grants Supabase gives on schema public. Modelled on supabase/postgres
-- `migrations/db/init-scripts/00000000000000-initial-schema.sql` and `...-auth-schema.sql`. The roles it grants to
-- come from local/db/roles.sql. Hosted Supabase already has all of this; it is never part of supabase/migrations.
--
-- local/db/migrate.ts runs this once per database — before the first migration, while supabase_migrations does
-- not exist yet — because migrations may later narrow what it grants (the foundation migration revokes the
-- default EXECUTE on functions from anon), and re-granting on the next start would silently undo that.
-- It is idempotent all the same.

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
