-- Cancelling a task: one statement decides it (compare-and-set on a non-terminal task), and everything the task
-- held is given back at once — open budget reservations, its concurrency slot — and a pending approval is closed
-- so it leaves the review queue. The run itself is stopped by the `task/run.cancelled` event (cancelOn).
create function public.cancel_task(p_task_id uuid, p_reason text, p_actor text)
returns table (outcome text, status public.task_status)
language plpgsql as $$
#variable_conflict use_column
declare
  v_status public.task_status;
begin
  update public.tasks t
     set status = 'cancelled', status_reason = coalesce(p_reason, 'cancelled'), finished_at = now()
   where t.id = p_task_id
     and t.status not in ('completed', 'failed', 'stopped', 'rejected', 'cancelled')
  returning t.status into v_status;

  if not found then
    select t.status into v_status from public.tasks t where t.id = p_task_id;
    if not found then
      return query select 'not_found'::text, null::public.task_status;
    else
      return query select 'already_finished'::text, v_status;
    end if;
    return;
  end if;

  update public.approvals a
     set status = 'rejected', notes = 'The task was cancelled.', decided_by = coalesce(p_actor, 'system'),
         decided_via = 'api', decided_at = now()
   where a.task_id = p_task_id and a.status = 'pending';
  perform public.release_task_budget(p_task_id);
  delete from public.agent_slots s where s.task_id = p_task_id;
  return query select 'cancelled'::text, v_status;
end $$;

revoke execute on all functions in schema public from public, anon, authenticated;
grant execute on all functions in schema public to service_role;
