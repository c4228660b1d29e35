-- A slot's hand-over, sent by the step that released it (issue 10: no slot idle > 1 s while tasks wait). Until now
-- the release recorded the woken task's `agent/slot.released` in the outbox and a relay pass then claimed it, sent it
-- and marked it: three PostgREST round trips after the release's own, plus the wait for a relay pass to be free —
-- most of a hand-over's time under a submission burst (docs/benchmarks.md, bench:slots). Now the release can also
-- CLAIM the wake-ups it records, in the same transaction, and return them, so its caller sends them at once and marks
-- them sent. The outbox row stays the durable fallback: the claim is a lease like a relay's, so a caller that dies
-- before sending leaves the row to the relay's sweep once the lease ends, and a caller that sent but died before
-- marking it causes a second send under the same event id, which Inngest (and the local engine) drop. A claimed row
-- is never visible to a relay's claim meanwhile (it is recorded and leased in one transaction).

-- The hand-over itself, now with the tasks it woke: one row per slot handed over, in line order (priority, then
-- age), with the wake-up's event id (null for p_caller, which is awake). The one copy of the line's logic:
-- agent_slot_handoff below counts these rows.
create function public.agent_slot_handoff_events(
  p_agent_id text,
  p_lease_seconds integer,
  p_caller uuid default null,
  p_now timestamptz default now()
) returns table (handed_task uuid, wakeup_event_id text) language plpgsql set search_path = '' as $$
declare
  v_now   timestamptz := coalesce(p_now, now());
  v_limit integer;
  v_count integer;
  v_next  public.agent_slot_waiters;
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
      handed_task := v_next.task_id;
      wakeup_event_id := null;
      if v_next.task_id is distinct from p_caller then
        wakeup_event_id := 'slot-' || v_next.task_id || '-' || v_next.ticket;
        perform public.outbox_record('agent/slot.released',
          jsonb_build_object('agent_id', p_agent_id, 'task_id', v_next.task_id), wakeup_event_id);
      end if;
      return next;
    end if;
  end loop;
end $$;

-- Same signature and result as before (claim_agent_slot, release_agent_slot_fair, recheck_agent_slot and
-- cancel_task_announced call it): how many slots were handed over.
create or replace function public.agent_slot_handoff(
  p_agent_id text,
  p_lease_seconds integer,
  p_caller uuid default null,
  p_now timestamptz default now()
) returns integer language sql set search_path = '' as $$
  select count(*)::integer from public.agent_slot_handoff_events(p_agent_id, p_lease_seconds, p_caller, p_now)
$$;

-- Claims the pending outbox rows with these event ids for the caller, which sends them itself, leased for
-- p_lease_seconds exactly as outbox_claim leases a relay's rows: attempts + 1, available_at pushed forward. A row
-- already leased by a relay (available_at in the future), being claimed right now (locked) or sent is left alone.
-- Returns [{id, event_id, name, data}].
create function public.outbox_claim_events(p_event_ids text[], p_lease_seconds integer)
returns jsonb language sql set search_path = '' as $$
  with picked as (
    select o.id from public.outbox o
     where o.event_id = any(p_event_ids) and o.sent_at is null and o.available_at <= now()
       for update skip locked
  ), claimed as (
    update public.outbox o
       set available_at = now() + make_interval(secs => greatest(1, p_lease_seconds)), attempts = o.attempts + 1
      from picked
     where o.id = picked.id
    returning o.id, o.event_id, o.name, o.data
  )
  select coalesce(jsonb_agg(jsonb_build_object('id', c.id, 'event_id', c.event_id, 'name', c.name, 'data', c.data) order by c.id), '[]'::jsonb)
    from claimed c
$$;

-- release_agent_slot_fair, returning the wake-ups of its hand-overs claimed for the caller when p_claim_seconds > 0
-- (the caller can send events: it sends them and marks them sent). With 0 nothing is claimed and `wakeups` is empty:
-- the relay sends them, as before.
create function public.release_agent_slot_direct(p_task_id uuid, p_claim_seconds integer default 0, p_now timestamptz default now())
returns table (held boolean, handed integer, wakeups jsonb) language plpgsql set search_path = '' as $$
declare
  v_agent  text;
  v_held   boolean;
  v_events text[];
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
    return query select false, 0, '[]'::jsonb;
    return;
  end if;
  perform 1 from public.agents a where a.id = v_agent for update;
  delete from public.agent_slot_waiters w where w.task_id = p_task_id;
  with gone as (delete from public.agent_slots s where s.task_id = p_task_id returning 1)
  select exists (select 1 from gone) into v_held;
  -- The next waiter's lease covers the wake-up's trip (send, engine, a call to the app) until its own claim renews it.
  select count(*)::integer, coalesce(array_agg(h.wakeup_event_id) filter (where h.wakeup_event_id is not null), '{}')
    into v_handed, v_events
    from public.agent_slot_handoff_events(v_agent, 120, null, p_now) h;
  return query select v_held, v_handed,
    case when coalesce(p_claim_seconds, 0) > 0 and cardinality(v_events) > 0
         then public.outbox_claim_events(v_events, p_claim_seconds) else '[]'::jsonb end;
end $$;

-- recheck_agent_slot, returning the wake-ups it recorded (this task's own under p_event_id, and any slot the check
-- handed to others) claimed for the caller when p_claim_seconds > 0, as release_agent_slot_direct does.
create function public.recheck_agent_slot_direct(
  p_agent_id text,
  p_task_id uuid,
  p_event_id text,
  p_claim_seconds integer default 0,
  p_now timestamptz default now()
) returns table (woken boolean, wakeups jsonb) language plpgsql set search_path = '' as $$
declare
  v_events text[];
  v_woken  boolean := false;
begin
  perform 1 from public.agents a where a.id = p_agent_id for update;
  delete from public.agent_slots s where s.agent_id = p_agent_id and s.lease_until < coalesce(p_now, now());
  select coalesce(array_agg(h.wakeup_event_id) filter (where h.wakeup_event_id is not null), '{}')
    into v_events
    from public.agent_slot_handoff_events(p_agent_id, 120, null, p_now) h;
  if exists (select 1 from public.agent_slots s where s.task_id = p_task_id) then
    perform public.outbox_record('agent/slot.released',
      jsonb_build_object('agent_id', p_agent_id, 'task_id', p_task_id), p_event_id);
    v_events := v_events || p_event_id;
    v_woken := true;
  end if;
  return query select v_woken,
    case when coalesce(p_claim_seconds, 0) > 0 and cardinality(v_events) > 0
         then public.outbox_claim_events(v_events, p_claim_seconds) else '[]'::jsonb end;
end $$;

revoke execute on function public.agent_slot_handoff_events(text, integer, uuid, timestamptz) from public, anon, authenticated;
revoke execute on function public.outbox_claim_events(text[], integer) from public, anon, authenticated;
revoke execute on function public.release_agent_slot_direct(uuid, integer, timestamptz) from public, anon, authenticated;
revoke execute on function public.recheck_agent_slot_direct(text, uuid, text, integer, timestamptz) from public, anon, authenticated;
grant execute on function public.agent_slot_handoff_events(text, integer, uuid, timestamptz) to service_role;
grant execute on function public.outbox_claim_events(text[], integer) to service_role;
grant execute on function public.release_agent_slot_direct(uuid, integer, timestamptz) to service_role;
grant execute on function public.recheck_agent_slot_direct(text, uuid, text, integer, timestamptz) to service_role;
