-- Replay through the submission outbox, now also for pipeline stages: a failed stage's dead letter reopens its pipeline
-- from that stage (replay_dead_letter, 20261129120200) and the event that starts the stage is recorded here in the same
-- transaction, with a new id per replay (event ids are deduplicated): pipeline/run.requested for research,
-- pipeline/research.completed for analyze, pipeline/analysis.completed for the report.
drop function public.replay_dead_letter_announced(uuid, text, text, text, text, text);
create function public.replay_dead_letter_announced(
  p_id uuid,
  p_prompt text,
  p_agent_id text,
  p_api_key_id text,
  p_idempotency_key text,
  p_actor text
) returns table (outcome text, task_id uuid, dead_letter_status text, pipeline_id uuid, stage text)
language plpgsql set search_path = '' as $$
#variable_conflict use_column
declare
  v_r record;
  v_agent text;
  v_suffix text;
  v_prev uuid;
begin
  select * into v_r from public.replay_dead_letter(p_id, p_prompt, p_agent_id, p_api_key_id, p_idempotency_key, p_actor);
  if v_r.outcome = 'replayed' then
    select t.agent_id into v_agent from public.tasks t where t.id = v_r.task_id;
    perform public.outbox_record('task/run.requested',
      jsonb_build_object('task_id', v_r.task_id, 'agent', v_agent), 'task-run-' || v_r.task_id);
  elsif v_r.outcome = 'replayed_pipeline' then
    v_suffix := '-replay-' || v_r.replays;
    if v_r.stage = 'research' then
      perform public.outbox_record('pipeline/run.requested',
        jsonb_build_object('pipeline_id', v_r.pipeline_id), 'pipeline-run-' || v_r.pipeline_id || v_suffix);
    elsif v_r.stage = 'analyze' then
      select s.task_id into v_prev from public.pipeline_stages s where s.pipeline_id = v_r.pipeline_id and s.stage = 'research';
      perform public.outbox_record('pipeline/research.completed',
        jsonb_build_object('pipeline_id', v_r.pipeline_id, 'task_id', v_prev),
        'pipeline-' || v_r.pipeline_id || '-research-completed' || v_suffix);
    else
      select s.task_id into v_prev from public.pipeline_stages s where s.pipeline_id = v_r.pipeline_id and s.stage = 'analyze';
      perform public.outbox_record('pipeline/analysis.completed',
        jsonb_build_object('pipeline_id', v_r.pipeline_id, 'task_id', v_prev),
        'pipeline-' || v_r.pipeline_id || '-analysis-completed' || v_suffix);
    end if;
  end if;
  return query select case when v_r.outcome = 'replayed_pipeline' then 'replayed' else v_r.outcome end,
    v_r.task_id, v_r.dead_letter_status, v_r.pipeline_id, v_r.stage;
end $$;

revoke execute on all functions in schema public from public, anon, authenticated;
grant execute on all functions in schema public to service_role;
