-- Schedules join the submission outbox (docs/outbox.md): fire_schedule now records the task's start event
-- (task/run.requested, id task-run-<task id>) in the same transaction as the task and the firing, so a firing can
-- never leave a task that never runs; the relay (or the outbox sweeper) sends it. Same signature and outcomes.
create or replace function public.fire_schedule(
  p_schedule_id uuid,
  p_expected_next timestamptz,
  p_scheduled_for timestamptz,
  p_next_run_at timestamptz,
  p_skipped integer,
  p_skipped_from timestamptz,
  p_prompt text,
  p_request_hash text
) returns table (outcome text, task_id uuid, agent_id text)
language plpgsql set search_path = '' as $$
declare
  v_s public.schedules;
  v_task uuid;
begin
  select f.task_id into v_task from public.schedule_firings f
   where f.schedule_id = p_schedule_id and f.scheduled_for = p_scheduled_for;
  if found then
    return query select 'replayed'::text, v_task, (select s.agent_id from public.schedules s where s.id = p_schedule_id);
    return;
  end if;

  update public.schedules s
     set next_run_at = p_next_run_at,
         last_run_at = now(),
         last_scheduled_for = p_scheduled_for,
         skipped_total = s.skipped_total + greatest(p_skipped, 0)
   where s.id = p_schedule_id and s.enabled and s.next_run_at = p_expected_next
  returning * into v_s;
  if not found then
    return query select 'not_due'::text, null::uuid, null::text;
    return;
  end if;

  select c.task_id into v_task
    from public.create_task(v_s.agent_id, p_prompt, v_s.input, 0::smallint, v_s.mode, v_s.require_approval, null, null,
                            'schedule:' || p_schedule_id::text || ':' ||
                              to_char(p_scheduled_for at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                            p_request_hash) c;

  perform public.outbox_record('task/run.requested',
    jsonb_build_object('task_id', v_task, 'agent', v_s.agent_id), 'task-run-' || v_task::text);

  insert into public.schedule_firings (schedule_id, scheduled_for, task_id, skipped, skipped_from)
  values (p_schedule_id, p_scheduled_for, v_task, greatest(p_skipped, 0), p_skipped_from);
  update public.schedules s set last_task_id = v_task where s.id = p_schedule_id;
  return query select 'created'::text, v_task, v_s.agent_id;
end $$;

revoke execute on all functions in schema public from public, anon, authenticated;
grant execute on all functions in schema public to service_role;
