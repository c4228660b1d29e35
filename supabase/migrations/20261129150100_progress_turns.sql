-- Progress means one thing everywhere: model turns finished (`progress_done`) out of the agent's turn limit
-- (`progress_total`, max_turns when the task was created; it grows only if a revision after "approve with
-- changes" runs past it). Before, every completed step (tool calls too) was counted against max_turns while the
-- task ran, and the total collapsed to that step count when it completed (a 3-turn task showed 5/5).
-- Same signatures, same behaviour otherwise; only the counting changes.
create or replace function public.record_task_step(
  p_task_id uuid,
  p_step_id text,
  p_kind text,
  p_status text,
  p_detail jsonb,
  p_input_tokens integer,
  p_output_tokens integer,
  p_cost_micros bigint
) returns void
language plpgsql
set search_path = ''
as $$
begin
  -- A completed step is never changed again. ON CONFLICT DO UPDATE locks the existing row and checks the WHERE
  -- against its latest version, so of concurrent calls exactly one gets FOUND for a step's completion.
  insert into public.task_steps (task_id, step_id, kind, status, detail, input_tokens, output_tokens,
                                 cost_micros, finished_at)
  values (p_task_id, p_step_id, p_kind, p_status, p_detail, coalesce(p_input_tokens, 0),
          coalesce(p_output_tokens, 0), coalesce(p_cost_micros, 0),
          case when p_status = 'running' then null else now() end)
  on conflict (task_id, step_id) do update
     set status = excluded.status, detail = excluded.detail, input_tokens = excluded.input_tokens,
         output_tokens = excluded.output_tokens, cost_micros = excluded.cost_micros,
         finished_at = excluded.finished_at
   where public.task_steps.status <> 'completed';

  -- Only a finished model turn is progress (tool calls and system steps are on the timeline, not counted).
  if found and p_status = 'completed' and p_kind = 'model' then
    update public.tasks
       set progress_done = progress_done + 1,
           progress_total = greatest(progress_total, progress_done + 1)
     where id = p_task_id;
  end if;
end $$;

-- Ends a task once (unchanged, except that the turn limit is no longer overwritten with the count at the end).
create or replace function public.finish_task(
  p_task_id uuid,
  p_status public.task_status,
  p_result jsonb,
  p_error jsonb,
  p_reason text
) returns boolean
language plpgsql
set search_path = ''
as $$
begin
  if p_status not in ('completed', 'failed', 'stopped', 'rejected', 'cancelled') then
    raise exception 'finish_task: % is not a terminal status', p_status using errcode = '22023';
  end if;
  update public.tasks
     set status = p_status, result = coalesce(p_result, result), error = p_error, status_reason = p_reason,
         finished_at = now()
   where id = p_task_id
     and status not in ('completed', 'failed', 'stopped', 'rejected', 'cancelled');
  return found;
end $$;

-- Tasks that already ran: recount their finished turns the same way.
update public.tasks t
   set progress_done = coalesce((select count(*) from public.task_steps s
                                  where s.task_id = t.id and s.kind = 'model' and s.status = 'completed'), 0),
       progress_total = greatest(coalesce((select a.max_turns from public.agents a where a.id = t.agent_id), 1),
                                 (select count(*) from public.task_steps s
                                   where s.task_id = t.id and s.kind = 'model' and s.status = 'completed'));

revoke execute on function public.record_task_step(uuid, text, text, text, jsonb, integer, integer, bigint) from public, anon, authenticated;
revoke execute on function public.finish_task(uuid, public.task_status, jsonb, jsonb, text) from public, anon, authenticated;
