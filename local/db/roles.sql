-- The cluster-wide part of what a Supabase project has before its first migration: the API roles PostgREST
-- switches between. Roles belong to the whole Postgres server, not to one database, so local/db/migrate.ts runs
-- this on every migrate of every database (each per-test database included); it converges, never duplicates.
--
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
