-- A dead letter's replay and the new task's start event in one transaction (the submission outbox, 20261129100000):
-- replay_dead_letter (migration 20261129120100, resolved when this runs: plpgsql binds at call time) decides and
-- records the linked task; its `task/run.requested` (id task-run-<task id>) is recorded here with it, so a replay
-- is never recorded without the event that runs it, and an unreachable Inngest never takes a replay back.
create function public.replay_dead_letter_announced(
  p_id uuid,
  p_prompt text,
  p_agent_id text,
  p_api_key_id text,
  p_idempotency_key text,
  p_actor text
) returns table (outcome text, task_id uuid, dead_letter_status text)
language plpgsql set search_path = '' as $$
#variable_conflict use_column
declare
  v_r record;
  v_agent text;
begin
  select * into v_r from public.replay_dead_letter(p_id, p_prompt, p_agent_id, p_api_key_id, p_idempotency_key, p_actor);
  if v_r.outcome = 'replayed' then
    select t.agent_id into v_agent from public.tasks t where t.id = v_r.task_id;
    perform public.outbox_record('task/run.requested',
      jsonb_build_object('task_id', v_r.task_id, 'agent', v_agent), 'task-run-' || v_r.task_id);
  end if;
  return query select v_r.outcome, v_r.task_id, v_r.dead_letter_status;
end $$;

revoke execute on all functions in schema public from public, anon, authenticated;
grant execute on all functions in schema public to service_role;
