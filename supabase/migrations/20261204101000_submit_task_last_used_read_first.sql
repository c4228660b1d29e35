-- submit_task (POST /api/tasks's one call) reads the key's last_used_at with the key check it already makes, and runs
-- the "last used" UPDATE only when it is due (once a minute per key), instead of running an UPDATE that matches no row
-- on every call: that no-op statement cost ~0.1 ms of Postgres CPU per POST (docs/benchmarks.md, session 7), as much
-- as a fifth of the whole function. Same outcome: the key is checked and locked FOR KEY SHARE exactly as before; the
-- UPDATE keeps its own condition, so two calls racing past the read still write last_used_at at most once a minute.
-- Everything else is 20261130121000_overnight_mode.sql's submit_task, unchanged.
create or replace function public.submit_task(
  p_key_id text,
  p_key_hash text,
  p_agent_id text,
  p_prompt text,
  p_input jsonb,
  p_priority smallint,
  p_mode public.task_mode,
  p_require_approval boolean,
  p_callback_url text,
  p_idempotency_key text,
  p_request_hash text,
  p_deadline timestamptz default null
) returns table (task_id uuid, outcome text, status public.task_status, created_at timestamptz)
language plpgsql set search_path = '' as $$
#variable_conflict use_column
declare
  v_task record;
  v_last_used timestamptz;
begin
  if p_key_id is not null then
    select k.last_used_at into v_last_used from public.api_keys k
     where k.id = p_key_id and (p_key_hash is null or k.key_hash = p_key_hash) and k.revoked_at is null
       for key share;
    if not found then
      return query select null::uuid, 'unauthorized'::text, null::public.task_status, null::timestamptz;
      return;
    end if;
    if v_last_used is null or v_last_used < now() - interval '1 minute' then
      update public.api_keys k set last_used_at = now()
       where k.id = p_key_id and (k.last_used_at is null or k.last_used_at < now() - interval '1 minute');
    end if;
  end if;

  select * into v_task from public.create_task(p_agent_id, p_prompt, p_input, p_priority, p_mode,
    p_require_approval, p_callback_url, p_key_id, p_idempotency_key, p_request_hash);

  if v_task.outcome = 'created' then
    if p_deadline is not null then
      update public.tasks t set deadline = p_deadline where t.id = v_task.task_id;
    end if;
    perform public.outbox_record('task/run.requested',
      jsonb_build_object('task_id', v_task.task_id, 'agent', p_agent_id), 'task-run-' || v_task.task_id);
  end if;
  return query select v_task.task_id, v_task.outcome, v_task.status, v_task.created_at;
end $$;

revoke execute on function public.submit_task(text, text, text, text, jsonb, smallint, public.task_mode, boolean, text, text,
  text, timestamptz) from public, anon, authenticated;
grant execute on function public.submit_task(text, text, text, text, jsonb, smallint, public.task_mode, boolean, text, text,
  text, timestamptz) to service_role;
