-- A cap on the email recipients send_email may reach in any 24 hours, across all agents and tasks
-- (NIGHTSHIFT_EMAIL_DAILY_MAX): whatever a model is told to do ("send 10,000 emails"), the mail that leaves is
-- bounded. Counted here, in one function under one lock, so parallel tool steps cannot slip past it; idempotent per
-- (task, tool call), so a retried step is never counted twice.
create table public.email_quota_uses (
  task_id     uuid not null references public.tasks(id) on delete cascade,
  tool_use_id text not null check (length(tool_use_id) between 1 and 255),
  recipients  integer not null check (recipients between 1 and 100),
  used_at     timestamptz not null,
  primary key (task_id, tool_use_id)
);
create index email_quota_uses_used_at on public.email_quota_uses (used_at);
alter table public.email_quota_uses enable row level security;

-- allowed: send it; used: recipients counted in the 24 hours before p_now (this call included when allowed).
create function public.reserve_email_quota(
  p_task_id uuid,
  p_tool_use_id text,
  p_recipients integer,
  p_daily_max integer,
  p_now timestamptz default now()
) returns table (allowed boolean, used bigint)
language plpgsql
set search_path = ''
as $$
declare
  v_now  timestamptz := coalesce(p_now, now());
  v_used bigint;
begin
  if p_recipients is null or p_recipients < 1 or p_recipients > 100 then
    raise exception 'reserve_email_quota: recipients must be 1..100, got %', p_recipients using errcode = '22023';
  end if;
  if p_daily_max is null or p_daily_max < 0 then
    raise exception 'reserve_email_quota: daily max must be >= 0, got %', p_daily_max using errcode = '22023';
  end if;
  -- One counter for the whole system: parallel reservations take turns (a transaction-scoped advisory lock).
  perform pg_advisory_xact_lock(hashtext('nightshift.email_quota'));
  -- Older uses never count again: the table holds about a day of mail.
  delete from public.email_quota_uses u where u.used_at < v_now - interval '2 days';
  select coalesce(sum(u.recipients), 0) into v_used
    from public.email_quota_uses u where u.used_at > v_now - interval '24 hours';
  -- A retried step of an email already counted: allowed again, never counted twice.
  if exists (select 1 from public.email_quota_uses u where u.task_id = p_task_id and u.tool_use_id = p_tool_use_id) then
    return query select true, v_used;
    return;
  end if;
  if v_used + p_recipients > p_daily_max then
    return query select false, v_used;
    return;
  end if;
  insert into public.email_quota_uses (task_id, tool_use_id, recipients, used_at)
  values (p_task_id, p_tool_use_id, p_recipients, v_now);
  return query select true, v_used + p_recipients;
end $$;

revoke execute on function public.reserve_email_quota(uuid, text, integer, integer, timestamptz) from public, anon, authenticated;
grant execute on function public.reserve_email_quota(uuid, text, integer, integer, timestamptz) to service_role;
