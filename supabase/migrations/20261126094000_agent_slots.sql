-- Per-agent concurrency from the database (agents.concurrency), so an operator changes it without a deploy.
-- A task holds a slot while it works; it gives the slot back while it waits (for a budget window or an approval)
-- and when it ends. Slots are leases: a run that died without releasing frees its slot when the lease runs out.
create table public.agent_slots (
  task_id     uuid primary key references public.tasks(id) on delete cascade,
  agent_id    text not null references public.agents(id),
  acquired_at timestamptz not null,
  lease_until timestamptz not null
);
create index agent_slots_agent on public.agent_slots (agent_id, lease_until);
alter table public.agent_slots enable row level security;

-- Takes (or renews) the task's slot when fewer than the agent's `concurrency` tasks hold one. The agent row
-- lock serializes the count-then-insert of concurrent callers, so the limit holds under any race.
create function public.acquire_agent_slot(
  p_agent_id text,
  p_task_id uuid,
  p_lease_seconds integer,
  p_now timestamptz default now()
) returns table (ok boolean, holders integer, max_concurrency integer)
language plpgsql as $$
#variable_conflict use_column
declare
  v_now   timestamptz := coalesce(p_now, now());
  v_limit integer;
  v_count integer;
begin
  if p_lease_seconds is null or p_lease_seconds < 1 then
    raise exception 'acquire_agent_slot: lease must be >= 1 s' using errcode = '22023';
  end if;
  select a.concurrency into v_limit from public.agents a where a.id = p_agent_id for update;
  if not found then
    raise exception 'acquire_agent_slot: unknown agent %', p_agent_id using errcode = 'NSA01';
  end if;

  delete from public.agent_slots s where s.agent_id = p_agent_id and s.lease_until < v_now;

  update public.agent_slots s set lease_until = v_now + make_interval(secs => p_lease_seconds)
   where s.task_id = p_task_id and s.agent_id = p_agent_id;
  if found then
    select count(*) into v_count from public.agent_slots s where s.agent_id = p_agent_id;
    return query select true, v_count, v_limit;
    return;
  end if;

  select count(*) into v_count from public.agent_slots s where s.agent_id = p_agent_id;
  if v_count >= v_limit then
    return query select false, v_count, v_limit;
    return;
  end if;
  insert into public.agent_slots (task_id, agent_id, acquired_at, lease_until)
  values (p_task_id, p_agent_id, v_now, v_now + make_interval(secs => p_lease_seconds));
  return query select true, v_count + 1, v_limit;
end $$;

create function public.release_agent_slot(p_task_id uuid)
returns boolean language sql as $$
  with gone as (delete from public.agent_slots s where s.task_id = p_task_id returning 1)
  select exists (select 1 from gone)
$$;

revoke execute on all functions in schema public from public, anon, authenticated;
grant execute on all functions in schema public to service_role;
