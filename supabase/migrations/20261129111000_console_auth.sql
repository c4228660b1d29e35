-- Console sign-in state that must outlive one server process (issue 11, findings 2 and 9).
--
-- console_sessions: the server-side record of each sign-in. The cookie stays signed (lib/console/session.ts), and
-- a page or action also requires its row to be live, so sign-out ends the session for every copy of the cookie.
-- (A password change already ends every session: the signing key is derived from the password.)
--
-- console_login_limits: the sign-in limiter, shared by every instance. One row per client address counts the
-- attempts in a fixed window; the row '*' counts failures from everyone. console_login_begin counts an attempt
-- before the password is checked, in one statement under the row's lock, so parallel guesses cannot all slip
-- past the limit; console_login_finish clears the client's row on success or records the failure.
create table public.console_sessions (
  sid        text primary key check (length(sid) between 16 and 64),
  created_at timestamptz not null default now(),
  expires_at timestamptz not null,
  ended_at   timestamptz
);
alter table public.console_sessions enable row level security;
create index console_sessions_expires_idx on public.console_sessions (expires_at);

create table public.console_login_limits (
  client            text primary key check (length(client) between 1 and 80),
  attempts          integer not null default 0,
  failures          integer not null default 0,
  window_started_at timestamptz not null,
  updated_at        timestamptz not null
);
alter table public.console_login_limits enable row level security;

-- Counts one attempt for p_client. Returns the client's attempts in the current window (this one included), the
-- failures from all clients in the global window, and the seconds until the client's window ends.
create function public.console_login_begin(p_client text, p_window_seconds integer, p_now timestamptz default now())
returns table (attempts integer, global_failures integer, retry_after_seconds integer)
language plpgsql
set search_path = ''
as $$
declare
  v_window interval := make_interval(secs => p_window_seconds);
  v_row public.console_login_limits;
  v_global integer;
begin
  if p_client = '*' then
    raise exception 'client * is reserved' using errcode = '22023';
  end if;
  insert into public.console_login_limits as l (client, attempts, failures, window_started_at, updated_at)
  values (p_client, 1, 0, p_now, p_now)
  on conflict (client) do update set
    attempts          = case when l.window_started_at <= p_now - v_window then 1 else l.attempts + 1 end,
    failures          = case when l.window_started_at <= p_now - v_window then 0 else l.failures end,
    window_started_at = case when l.window_started_at <= p_now - v_window then p_now else l.window_started_at end,
    updated_at        = p_now
  returning * into v_row;

  select case when g.window_started_at <= p_now - v_window then 0 else g.failures end
    into v_global
    from public.console_login_limits g where g.client = '*';

  -- Forget clients whose window ended long ago (bounded work: a flood of fake addresses cannot grow the table).
  delete from public.console_login_limits s
   where s.ctid in (select d.ctid from public.console_login_limits d
                     where d.updated_at < p_now - 2 * v_window and d.client not in ('*', p_client)
                     limit 100
                     for update skip locked);

  return query select v_row.attempts, coalesce(v_global, 0),
    greatest(0, ceil(extract(epoch from (v_row.window_started_at + v_window - p_now))))::integer;
end;
$$;

-- Ends an attempt: a success forgets the client's attempts; a failure is counted for the client and globally.
create function public.console_login_finish(p_client text, p_ok boolean, p_window_seconds integer, p_now timestamptz default now())
returns void
language plpgsql
set search_path = ''
as $$
declare
  v_window interval := make_interval(secs => p_window_seconds);
begin
  if p_ok then
    delete from public.console_login_limits where client = p_client;
    return;
  end if;
  update public.console_login_limits set failures = failures + 1, updated_at = p_now where client = p_client;
  insert into public.console_login_limits as l (client, attempts, failures, window_started_at, updated_at)
  values ('*', 0, 1, p_now, p_now)
  on conflict (client) do update set
    failures          = case when l.window_started_at <= p_now - v_window then 1 else l.failures + 1 end,
    window_started_at = case when l.window_started_at <= p_now - v_window then p_now else l.window_started_at end,
    updated_at        = p_now;
end;
$$;

revoke execute on function public.console_login_begin(text, integer, timestamptz) from public, anon, authenticated;
revoke execute on function public.console_login_finish(text, boolean, integer, timestamptz) from public, anon, authenticated;
grant execute on function public.console_login_begin(text, integer, timestamptz) to service_role;
grant execute on function public.console_login_finish(text, boolean, integer, timestamptz) to service_role;
