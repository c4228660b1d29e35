-- A replayed dead letter keeps the original task's deadline and next hop. Without them a mode-auto task came back
-- with no deadline (so every call went through a batch, up to 24 h, whatever the deadline had been) and a task
-- submitted with a next_hop never handed its result on. Same function as 20261130100000_stage_replay_edits.sql
-- otherwise; only the insert of the new task changes.
create or replace function public.replay_dead_letter(
  p_id uuid,
  p_prompt text,
  p_agent_id text,
  p_api_key_id text,
  p_idempotency_key text,
  p_actor text
) returns table (outcome text, task_id uuid, dead_letter_status text, pipeline_id uuid, stage text, replays integer)
language plpgsql set search_path = '' as $$
#variable_conflict use_column
declare
  v_dl public.dead_letters;
  v_orig public.tasks;
  v_agent public.agents;
  v_task uuid;
  v_replays integer;
  v_position smallint;
begin
  select * into v_dl from public.dead_letters d where d.id = p_id for update;
  if not found then
    return query select 'not_found'::text, null::uuid, null::text, null::uuid, null::text, null::integer;
    return;
  end if;
  if v_dl.status = 'replayed' then
    if p_idempotency_key is not null and v_dl.replay_idempotency_key = p_idempotency_key
       and v_dl.replay_api_key_id is not distinct from p_api_key_id then
      return query select 'same'::text, v_dl.replayed_task_id, v_dl.status, v_dl.pipeline_id, v_dl.stage, null::integer;
    else
      return query select 'already_replayed'::text, v_dl.replayed_task_id, v_dl.status, v_dl.pipeline_id, v_dl.stage, null::integer;
    end if;
    return;
  end if;
  if v_dl.status = 'discarded' then
    return query select 'discarded'::text, null::uuid, v_dl.status, v_dl.pipeline_id, v_dl.stage, null::integer;
    return;
  end if;

  -- The agent first, for a stage as for a task: an unknown or disabled one changes nothing.
  if p_agent_id is not null then
    select * into v_agent from public.agents a where a.id = p_agent_id and a.enabled;
    if not found then
      raise exception 'unknown agent %', p_agent_id using errcode = 'NSA01';
    end if;
  end if;

  if v_dl.pipeline_id is not null and v_dl.stage is not null then
    if not public.reopen_pipeline_from_stage(v_dl.pipeline_id, v_dl.stage) then
      return query select 'pipeline_not_failed'::text, null::uuid, v_dl.status, v_dl.pipeline_id, v_dl.stage, null::integer;
      return;
    end if;
    select s.position into v_position from public.pipeline_stages s
     where s.pipeline_id = v_dl.pipeline_id and s.stage = v_dl.stage;
    update public.pipeline_stages s
       set prompt_override = case when s.stage = v_dl.stage then coalesce(p_prompt, s.prompt_override) else null end,
           agent_id = case when s.stage = v_dl.stage then coalesce(p_agent_id, s.agent_id) else s.agent_id end
     where s.pipeline_id = v_dl.pipeline_id and s.position >= v_position;
    select s.replays into v_replays from public.pipeline_stages s where s.pipeline_id = v_dl.pipeline_id and s.stage = v_dl.stage;
    update public.dead_letters d
       set status = 'replayed', replay_api_key_id = p_api_key_id, replay_idempotency_key = p_idempotency_key,
           resolved_by = p_actor, resolved_at = now()
     where d.id = p_id;
    return query select 'replayed_pipeline'::text, null::uuid, 'replayed'::text, v_dl.pipeline_id, v_dl.stage, v_replays;
    return;
  end if;

  select * into v_agent from public.agents a where a.id = coalesce(p_agent_id, v_dl.agent_id) and a.enabled;
  if not found then
    raise exception 'unknown agent %', coalesce(p_agent_id, v_dl.agent_id) using errcode = 'NSA01';
  end if;
  select * into v_orig from public.tasks t where t.id = v_dl.task_id;

  insert into public.tasks (agent_id, prompt, input, priority, mode, require_approval, callback_url, api_key_id,
                            progress_total, replay_of, deadline, next_hop)
  values (v_agent.id, coalesce(p_prompt, v_dl.prompt), v_dl.input, coalesce(v_orig.priority, 0),
          coalesce(v_orig.mode, 'now'), coalesce(v_orig.require_approval, false), v_orig.callback_url, p_api_key_id,
          v_agent.max_turns, v_dl.task_id, v_orig.deadline, v_orig.next_hop)
  returning id into v_task;

  update public.dead_letters d
     set status = 'replayed', replayed_task_id = v_task, replay_api_key_id = p_api_key_id,
         replay_idempotency_key = p_idempotency_key, resolved_by = p_actor, resolved_at = now()
   where d.id = p_id;
  return query select 'replayed'::text, v_task, 'replayed'::text, null::uuid, null::text, null::integer;
end $$;

revoke execute on all functions in schema public from public, anon, authenticated;
grant execute on all functions in schema public to service_role;
