-- Event-driven concurrency slots. A task that finds every slot of its agent taken registers as a waiter and sleeps
-- on `agent/slot.released`; whoever gives a slot back hands it straight to the first waiter — highest priority,
-- then oldest task — and records the wake-up for that task in the outbox, in the same transaction. So a released
-- slot is never idle while tasks wait, the order is decided here (not by whoever polls first), and a newcomer
-- cannot take a slot ahead of a task that has waited longer. A durable timeout on the wait is the fallback.
--
-- Every function below locks the agent row first (the same lock acquire_agent_slot takes), so the count of holders
-- and the choice of the next waiter are serialized per agent.

create table public.agent_slot_waiters (
  task_id    uuid primary key references public.tasks(id) on delete cascade,
  agent_id   text not null references public.agents(id),
  priority   smallint not null,
  -- The task's age (its created_at): older tasks go first within a priority.
  queued_at  timestamptz not null,
  since      timestamptz not null default now()
);
create index agent_slot_waiters_order on public.agent_slot_waiters (agent_id, priority desc, queued_at, task_id);
alter table public.agent_slot_waiters enable row level security;

-- Hands free slots of an agent to its waiters, in order, and records each wake-up (`agent/slot.released` for that
-- task) in the outbox. p_caller: the task calling (it gets its slot without a wake-up: it is awake). Waiters whose
-- task has ended are dropped. The caller must hold the agent row lock. Returns how many slots were handed over.
create function public.agent_slot_handoff(
  p_agent_id text,
  p_lease_seconds integer,
  p_caller uuid default null,
  p_now timestamptz default now()
) returns integer language plpgsql set search_path = '' as $$
declare
  v_now   timestamptz := coalesce(p_now, now());
  v_limit integer;
  v_count integer;
  v_next  public.agent_slot_waiters;
  v_given integer := 0;
begin
  delete from public.agent_slot_waiters w
   using public.tasks t
   where w.agent_id = p_agent_id and t.id = w.task_id and t.finished_at is not null;
  select a.concurrency into v_limit from public.agents a where a.id = p_agent_id;
  select count(*) into v_count from public.agent_slots s where s.agent_id = p_agent_id;
  while v_count < v_limit loop
    select * into v_next from public.agent_slot_waiters w
     where w.agent_id = p_agent_id
     order by w.priority desc, w.queued_at, w.task_id
     limit 1;
    exit when not found;
    delete from public.agent_slot_waiters w where w.task_id = v_next.task_id;
    insert into public.agent_slots (task_id, agent_id, acquired_at, lease_until)
    values (v_next.task_id, p_agent_id, v_now, v_now + make_interval(secs => p_lease_seconds))
    on conflict (task_id) do nothing;
    if found then
      v_count := v_count + 1;
      v_given := v_given + 1;
      if v_next.task_id is distinct from p_caller then
        perform public.outbox_record('agent/slot.released',
          jsonb_build_object('agent_id', p_agent_id, 'task_id', v_next.task_id),
          'slot-' || v_next.task_id || '-' || (extract(epoch from v_next.since) * 1000000)::bigint);
      end if;
    end if;
  end loop;
  return v_given;
end $$;

-- Takes (or renews) the task's slot, fairly. outcome ok=false means: every slot is taken by tasks that are working
-- or by waiters ahead of this one; the task is now a waiter and will get `agent/slot.released` when a slot is
-- handed to it. Same result shape as acquire_agent_slot.
create function public.claim_agent_slot(
  p_agent_id text,
  p_task_id uuid,
  p_lease_seconds integer,
  p_now timestamptz default now()
) returns table (ok boolean, holders integer, max_concurrency integer)
language plpgsql set search_path = '' as $$
#variable_conflict use_column
declare
  v_now   timestamptz := coalesce(p_now, now());
  v_limit integer;
  v_count integer;
  v_task  record;
begin
  if p_lease_seconds is null or p_lease_seconds < 1 then
    raise exception 'claim_agent_slot: lease must be >= 1 s' using errcode = '22023';
  end if;
  select a.concurrency into v_limit from public.agents a where a.id = p_agent_id for update;
  if not found then
    raise exception 'claim_agent_slot: unknown agent %', p_agent_id using errcode = 'NSA01';
  end if;

  -- Slots of runs that died without giving them back (their lease ran out).
  delete from public.agent_slots s where s.agent_id = p_agent_id and s.lease_until < v_now;

  -- Held already (working, or handed over while this task waited): renew.
  update public.agent_slots s set lease_until = v_now + make_interval(secs => p_lease_seconds)
   where s.task_id = p_task_id and s.agent_id = p_agent_id;
  if found then
    delete from public.agent_slot_waiters w where w.task_id = p_task_id;
    select count(*) into v_count from public.agent_slots s where s.agent_id = p_agent_id;
    return query select true, v_count, v_limit;
    return;
  end if;

  -- Join the line (a no-op if already in it), then let the line take whatever is free — this task included, if
  -- its turn has come.
  select t.priority, t.created_at into v_task from public.tasks t where t.id = p_task_id;
  insert into public.agent_slot_waiters (task_id, agent_id, priority, queued_at, since)
  values (p_task_id, p_agent_id, coalesce(v_task.priority, 0), coalesce(v_task.created_at, v_now), v_now)
  on conflict (task_id) do nothing;
  perform public.agent_slot_handoff(p_agent_id, p_lease_seconds, p_task_id, v_now);

  select count(*) into v_count from public.agent_slots s where s.agent_id = p_agent_id;
  if exists (select 1 from public.agent_slots s where s.task_id = p_task_id) then
    return query select true, v_count, v_limit;
  else
    return query select false, v_count, v_limit;
  end if;
end $$;

-- Gives the task's slot back (it ends, or waits for a budget window or an approval) and hands it to the next waiter.
-- Also takes the task out of the line. True when it held a slot.
create function public.release_agent_slot_fair(p_task_id uuid, p_now timestamptz default now())
returns table (held boolean, handed integer) language plpgsql set search_path = '' as $$
declare
  v_agent  text;
  v_held   boolean;
  v_handed integer;
begin
  -- The task's agent even when it holds nothing: a slot it lost some other way (e.g. a dead letter filed with it)
  -- may have left one free, and this hands it on.
  select coalesce(
           (select s.agent_id from public.agent_slots s where s.task_id = p_task_id),
           (select w.agent_id from public.agent_slot_waiters w where w.task_id = p_task_id),
           (select t.agent_id from public.tasks t where t.id = p_task_id))
    into v_agent;
  if v_agent is null then
    return query select false, 0;
    return;
  end if;
  perform 1 from public.agents a where a.id = v_agent for update;
  delete from public.agent_slot_waiters w where w.task_id = p_task_id;
  with gone as (delete from public.agent_slots s where s.task_id = p_task_id returning 1)
  select exists (select 1 from gone) into v_held;
  -- The next waiter's lease covers the wake-up's trip (relay, engine, a call to the app) until its own claim renews it.
  v_handed := public.agent_slot_handoff(v_agent, 120, null, p_now);
  return query select v_held, v_handed;
end $$;

-- Called by a waiting task right after its wait for `agent/slot.released` is registered (inngest run-task): if the
-- slot was handed over before the wait could hear it, or a slot is free now, record the wake-up again under this
-- wait's own id (p_event_id), so the wait ends at once instead of at its timeout. True when a wake-up was recorded.
create function public.recheck_agent_slot(p_agent_id text, p_task_id uuid, p_event_id text, p_now timestamptz default now())
returns boolean language plpgsql set search_path = '' as $$
begin
  perform 1 from public.agents a where a.id = p_agent_id for update;
  delete from public.agent_slots s where s.agent_id = p_agent_id and s.lease_until < coalesce(p_now, now());
  perform public.agent_slot_handoff(p_agent_id, 120, null, p_now);
  if exists (select 1 from public.agent_slots s where s.task_id = p_task_id) then
    perform public.outbox_record('agent/slot.released',
      jsonb_build_object('agent_id', p_agent_id, 'task_id', p_task_id), p_event_id);
    return true;
  end if;
  return false;
end $$;

-- cancel_task gives the slot back by deleting it; the wrapper that announces the cancellation also hands the slot on.
create or replace function public.cancel_task_announced(p_task_id uuid, p_reason text, p_actor text)
returns table (outcome text, status public.task_status)
language plpgsql set search_path = '' as $$
#variable_conflict use_column
declare
  v_c record;
  v_agent text;
begin
  select t.agent_id into v_agent from public.tasks t where t.id = p_task_id;
  if v_agent is not null then
    perform 1 from public.agents a where a.id = v_agent for update;
  end if;
  select * into v_c from public.cancel_task(p_task_id, p_reason, p_actor);
  if v_c.outcome = 'cancelled' then
    delete from public.agent_slot_waiters w where w.task_id = p_task_id;
    perform public.agent_slot_handoff(v_agent, 120, null, now());
    perform public.outbox_record('task/run.cancelled',
      jsonb_build_object('task_id', p_task_id, 'reason', left(coalesce(p_reason, 'cancelled'), 500)),
      'task-cancelled-' || p_task_id);
  end if;
  return query select v_c.outcome, v_c.status;
end $$;

revoke execute on all functions in schema public from public, anon, authenticated;
grant execute on all functions in schema public to service_role;
