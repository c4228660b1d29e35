-- A slot's wake-up event id was 'slot-<task>-<microseconds of joining the line>'. A task that joined the line twice
-- at the same instant (its clock pinned to the time it was woken for, e.g. after a sleep that ended early by the app's
-- clock) got the same id for both hand-overs, and the second wake-up was dropped as a duplicate of the first (event
-- ids are deduplicated for 24 h, by Inngest and by the local engine): the task then waited for its fallback timeout
-- with a slot free. Each place in line now has its own ticket, so every hand-over's wake-up has its own id.
alter table public.agent_slot_waiters add column ticket bigint generated always as identity;

create or replace function public.agent_slot_handoff(
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
          'slot-' || v_next.task_id || '-' || v_next.ticket);
      end if;
    end if;
  end loop;
  return v_given;
end $$;

revoke execute on function public.agent_slot_handoff(text, integer, uuid, timestamptz) from public, anon, authenticated;
grant execute on function public.agent_slot_handoff(text, integer, uuid, timestamptz) to service_role;
