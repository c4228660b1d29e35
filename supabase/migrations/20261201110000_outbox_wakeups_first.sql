-- Wake-ups first. A relay pass took pending events oldest first, so in a burst of submissions (hundreds of
-- task/run.requested rows waiting to be relayed) a slot's hand-over recorded meanwhile waited behind all of them, and
-- the slot stayed with a task that had not been told (bench:slots, 1,000 tasks: hand-over -> relayed p99 0.6 s, max
-- 2.2 s in the burst). Events that act on a run already under way — a slot handed to a waiting task, a decision for
-- a waiting approval, a cancellation — now go before events that start new work; each group stays oldest first.
-- (Adding an event to this list means replacing this function and the index below.)

create index outbox_pending_wakeups on public.outbox (available_at, id)
  where sent_at is null and name in ('agent/slot.released', 'approval/decision.made', 'task/run.cancelled');

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
     where o.sent_at is null and o.name in ('agent/slot.released', 'approval/decision.made', 'task/run.cancelled')
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
