-- Wake-ups first (20261201110000_outbox_wakeups_first.sql), now with `budget/agent.freed`: a raised cap (the agents
-- trigger) or money given back wakes tasks that already wait for money — an event that acts on runs under way, like a
-- slot's hand-over — so it must not queue behind a burst of submissions either. The function and its partial index
-- are replaced together (their predicates are written identically so the planner uses the index).

drop index if exists public.outbox_pending_wakeups;
create index outbox_pending_wakeups on public.outbox (available_at, id)
  where sent_at is null and name in ('agent/slot.released', 'approval/decision.made', 'task/run.cancelled', 'budget/agent.freed');

create or replace function public.outbox_claim(p_limit integer, p_lease_seconds integer, p_now timestamptz default now())
returns table (id bigint, event_id text, name text, data jsonb, attempts integer)
language plpgsql set search_path = '' as $$
#variable_conflict use_column
declare
  v_now   timestamptz := coalesce(p_now, now());
  v_limit integer := greatest(1, least(coalesce(p_limit, 100), 1000));
  v_until timestamptz := v_now + make_interval(secs => greatest(1, coalesce(p_lease_seconds, 30)));
  v_taken integer;
begin
  -- The wake-ups (their own partial index: the predicate is written exactly as the index's).
  return query
  with picked as (
    select o.id from public.outbox o
     where o.sent_at is null and o.name in ('agent/slot.released', 'approval/decision.made', 'task/run.cancelled', 'budget/agent.freed')
       and o.available_at <= v_now
     order by o.available_at, o.id
     limit v_limit
       for update skip locked
  )
  update public.outbox o set available_at = v_until, attempts = o.attempts + 1
    from picked
   where o.id = picked.id
  returning o.id, o.event_id, o.name, o.data, o.attempts;
  get diagnostics v_taken = row_count;
  if v_taken >= v_limit then
    return;
  end if;
  -- Then everything else, oldest first. The rows just claimed are leased (available_at in the future), so this
  -- query does not see them again.
  return query
  with picked as (
    select o.id from public.outbox o
     where o.sent_at is null and o.available_at <= v_now
     order by o.available_at, o.id
     limit v_limit - v_taken
       for update skip locked
  )
  update public.outbox o set available_at = v_until, attempts = o.attempts + 1
    from picked
   where o.id = picked.id
  returning o.id, o.event_id, o.name, o.data, o.attempts;
end $$;

revoke execute on function public.outbox_claim(integer, integer, timestamptz) from public, anon, authenticated;
