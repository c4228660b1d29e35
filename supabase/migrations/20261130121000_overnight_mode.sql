-- Overnight mode chosen by policy (issue 13).
--
-- A task's mode: "now" (direct calls), "batch" (every call through the Message Batches API, half price, most end
-- within an hour, all within 24 h) or "auto": each call goes through the Batches API while the task's `deadline`
-- leaves room for a batch, directly otherwise (the rule is in lib/agents/call-mode.ts, docs/budget-and-pacing.md).
-- A task that names no mode takes its agent's `default_mode`. What the batch discount saved is recorded per call
-- (budget_reservations.batch_saving_micros), summed per task and shown per agent and night in the spend reports.

alter type public.task_mode add value if not exists 'auto';

alter table public.agents add column default_mode public.task_mode not null default 'now';
alter table public.tasks add column deadline timestamptz;
alter table public.tasks add column batch_saving_micros bigint not null default 0 check (batch_saving_micros >= 0);
alter table public.budget_reservations add column batch_saving_micros bigint not null default 0 check (batch_saving_micros >= 0);

-- A task without a mode takes its agent's default mode (create_task's signature is unchanged).
create or replace function public.create_task(
  p_agent_id text,
  p_prompt text,
  p_input jsonb,
  p_priority smallint,
  p_mode public.task_mode,
  p_require_approval boolean,
  p_callback_url text,
  p_api_key_id text,
  p_idempotency_key text,
  p_request_hash text
) returns table (task_id uuid, outcome text, status public.task_status, created_at timestamptz)
language plpgsql set search_path = '' as $$
declare
  v_row public.tasks;
begin
  insert into public.tasks (agent_id, prompt, input, priority, mode, require_approval, callback_url,
                            api_key_id, idempotency_key, request_hash, progress_total)
  select p_agent_id, p_prompt, p_input, coalesce(p_priority, 0), coalesce(p_mode, a.default_mode),
         coalesce(p_require_approval, false), p_callback_url, p_api_key_id, p_idempotency_key, p_request_hash,
         a.max_turns
    from public.agents a where a.id = p_agent_id
  on conflict (api_key_id, idempotency_key) where idempotency_key is not null do nothing
  returning * into v_row;

  if found then
    return query select v_row.id, 'created'::text, v_row.status, v_row.created_at;
    return;
  end if;

  if p_idempotency_key is null then
    raise exception 'unknown agent %', p_agent_id using errcode = 'NSA01';
  end if;

  select * into v_row from public.tasks t
   where t.api_key_id is not distinct from p_api_key_id and t.idempotency_key = p_idempotency_key;
  if not found then
    raise exception 'unknown agent %', p_agent_id using errcode = 'NSA01';
  end if;
  return query select v_row.id,
    case when v_row.request_hash = p_request_hash then 'replayed' else 'conflict' end,
    v_row.status, v_row.created_at;
end $$;

-- submit_task takes the task's deadline (recorded with the task, in the same transaction as its start event).
drop function public.submit_task(text, text, text, text, jsonb, smallint, public.task_mode, boolean, text, text, text);
create function public.submit_task(
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
begin
  if p_key_id is not null then
    perform 1 from public.api_keys k
     where k.id = p_key_id and (p_key_hash is null or k.key_hash = p_key_hash) and k.revoked_at is null
       for key share;
    if not found then
      return query select null::uuid, 'unauthorized'::text, null::public.task_status, null::timestamptz;
      return;
    end if;
    update public.api_keys k set last_used_at = now()
     where k.id = p_key_id and (k.last_used_at is null or k.last_used_at < now() - interval '1 minute');
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

-- The same with a next hop (a peer deployment): the deadline is passed on.
drop function public.submit_task_with_hop(text, text, text, text, jsonb, smallint, public.task_mode, boolean, text, text,
  text, text);
create function public.submit_task_with_hop(
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
  p_next_hop text,
  p_deadline timestamptz default null
) returns table (task_id uuid, outcome text, status public.task_status, created_at timestamptz)
language plpgsql set search_path = '' as $$
#variable_conflict use_column
declare
  v_t record;
begin
  perform 1 from public.peers p where p.name = p_next_hop and p.enabled for key share;
  if not found then
    raise exception 'unknown or disabled peer %', p_next_hop using errcode = 'NSW01';
  end if;
  select * into v_t from public.submit_task(p_key_id, p_key_hash, p_agent_id, p_prompt, p_input, p_priority, p_mode,
    p_require_approval, p_callback_url, p_idempotency_key, p_request_hash, p_deadline);
  if v_t.outcome = 'created' then
    update public.tasks t set next_hop = p_next_hop where t.id = v_t.task_id;
  end if;
  return query select v_t.task_id, v_t.outcome, v_t.status, v_t.created_at;
end $$;

-- Records what a batch call's discount saved (full price − batch price), on the call's settled reservation, and the
-- task's total recomputed from its calls (so a repeated note changes nothing).
create function public.note_batch_saving(p_task_id uuid, p_step_id text, p_saving_micros bigint)
returns bigint
language plpgsql set search_path = '' as $$
declare
  v_total bigint;
begin
  if p_task_id is null or p_step_id is null or coalesce(p_saving_micros, -1) < 0 then
    raise exception 'note_batch_saving: task, step and a saving >= 0 are required' using errcode = '22023';
  end if;
  update public.budget_reservations r set batch_saving_micros = p_saving_micros
   where r.task_id = p_task_id and r.step_id = p_step_id and r.status = 'settled';
  select coalesce(sum(r.batch_saving_micros), 0)::bigint into v_total
    from public.budget_reservations r where r.task_id = p_task_id and r.status = 'settled';
  update public.tasks t set batch_saving_micros = v_total where t.id = p_task_id;
  return v_total;
end $$;

-- PATCH /api/agents accepts default_mode (same function as before, one more field).
create or replace function public.update_agent_settings(p_agent_id text, p_patch jsonb, p_actor text)
returns table (agent jsonb, change_id bigint)
language plpgsql
set search_path = ''
as $$
#variable_conflict use_column
declare
  v_allowed constant text[] := array['daily_budget_micros', 'max_turns', 'max_tokens', 'wall_clock_seconds',
    'concurrency', 'model', 'requires_approval', 'approval_timeout_seconds', 'approval_auto_action',
    'budget_timezone', 'enabled', 'default_mode'];
  v_old public.agents;
  v_new public.agents;
  v_key text;
  v_changes jsonb := '{}'::jsonb;
  v_change_id bigint;
begin
  if p_patch is null or jsonb_typeof(p_patch) <> 'object' then
    raise exception 'patch must be a JSON object' using errcode = '22023';
  end if;
  if p_actor is null or length(p_actor) not between 1 and 200 then
    raise exception 'actor is required' using errcode = '22023';
  end if;
  for v_key in select jsonb_object_keys(p_patch) loop
    if not v_key = any(v_allowed) then
      raise exception 'unknown or read-only field %', v_key using errcode = '22023';
    end if;
  end loop;
  if p_patch ? 'budget_timezone'
     and not exists (select 1 from pg_catalog.pg_timezone_names z where z.name = p_patch->>'budget_timezone') then
    raise exception 'unknown time zone %', p_patch->>'budget_timezone' using errcode = '22023';
  end if;

  select * into v_old from public.agents a where a.id = p_agent_id for update;
  if not found then
    raise exception 'unknown agent %', p_agent_id using errcode = 'NSG01';
  end if;

  update public.agents a set
    daily_budget_micros = coalesce((p_patch->>'daily_budget_micros')::bigint, a.daily_budget_micros),
    max_turns = coalesce((p_patch->>'max_turns')::integer, a.max_turns),
    max_tokens = coalesce((p_patch->>'max_tokens')::integer, a.max_tokens),
    wall_clock_seconds = coalesce((p_patch->>'wall_clock_seconds')::integer, a.wall_clock_seconds),
    concurrency = coalesce((p_patch->>'concurrency')::integer, a.concurrency),
    model = coalesce(p_patch->>'model', a.model),
    requires_approval = coalesce((p_patch->>'requires_approval')::boolean, a.requires_approval),
    approval_timeout_seconds = coalesce((p_patch->>'approval_timeout_seconds')::integer, a.approval_timeout_seconds),
    approval_auto_action = coalesce(p_patch->>'approval_auto_action', a.approval_auto_action),
    budget_timezone = coalesce(p_patch->>'budget_timezone', a.budget_timezone),
    enabled = coalesce((p_patch->>'enabled')::boolean, a.enabled),
    default_mode = coalesce((p_patch->>'default_mode')::public.task_mode, a.default_mode)
  where a.id = p_agent_id
  returning * into v_new;

  for v_key in select jsonb_object_keys(p_patch) loop
    if (to_jsonb(v_old)->v_key) is distinct from (to_jsonb(v_new)->v_key) then
      v_changes := v_changes || jsonb_build_object(v_key,
        jsonb_build_object('from', to_jsonb(v_old)->v_key, 'to', to_jsonb(v_new)->v_key));
    end if;
  end loop;

  if v_changes <> '{}'::jsonb then
    insert into public.agent_changes (agent_id, actor, changes) values (p_agent_id, p_actor, v_changes)
    returning id into v_change_id;
  end if;
  return query select to_jsonb(v_new), v_change_id;
end $$;

-- The spend reports with the batch saving: per agent and night, and per task.
drop function public.spend_by_agent_day(text, date, date);
create function public.spend_by_agent_day(
  p_agent_id text default null,
  p_from date default null,
  p_to date default null
) returns table (
  agent_id text,
  window_start date,
  settled_micros bigint,
  estimated_micros bigint,
  reserved_micros bigint,
  committed_micros bigint,
  cap_micros bigint,
  reservations integer,
  settlements integer,
  input_tokens bigint,
  output_tokens bigint,
  cache_creation_input_tokens bigint,
  cache_read_input_tokens bigint,
  timezone text,
  starts_at timestamptz,
  ends_at timestamptz,
  batch_calls integer,
  batch_saving_micros bigint
)
language sql stable set search_path = '' as $$
  select w.agent_id, w.window_start, w.settled_micros, w.estimated_micros, w.reserved_micros,
         w.reserved_micros + w.settled_micros, w.cap_micros, w.reservations, w.settlements,
         coalesce(t.input_tokens, 0), coalesce(t.output_tokens, 0),
         coalesce(t.cache_creation_input_tokens, 0), coalesce(t.cache_read_input_tokens, 0),
         w.timezone, w.starts_at, w.ends_at,
         coalesce(t.batch_calls, 0), coalesce(t.batch_saving_micros, 0)
    from public.budget_windows w
    left join lateral (
      select sum(r.input_tokens)::bigint as input_tokens, sum(r.output_tokens)::bigint as output_tokens,
             sum(r.cache_creation_input_tokens)::bigint as cache_creation_input_tokens,
             sum(r.cache_read_input_tokens)::bigint as cache_read_input_tokens,
             (count(*) filter (where r.batch_saving_micros > 0))::integer as batch_calls,
             sum(r.batch_saving_micros)::bigint as batch_saving_micros
        from public.budget_reservations r
       where r.window_start = w.window_start and r.agent_id = w.agent_id and r.status = 'settled'
    ) t on true
   where (p_agent_id is null or w.agent_id = p_agent_id)
     and (p_from is null or w.window_start >= p_from)
     and (p_to is null or w.window_start <= p_to)
   order by w.window_start desc, w.agent_id
$$;

drop function public.spend_by_task(uuid);
create function public.spend_by_task(p_task_id uuid)
returns table (
  task_id uuid,
  agent_id text,
  settled_micros bigint,
  estimated_micros bigint,
  reserved_micros bigint,
  calls integer,
  estimated_calls integer,
  input_tokens bigint,
  output_tokens bigint,
  cache_creation_input_tokens bigint,
  cache_read_input_tokens bigint,
  batch_calls integer,
  batch_saving_micros bigint
)
language sql stable set search_path = '' as $$
  select r.task_id, min(r.agent_id),
         coalesce(sum(r.actual_micros) filter (where r.status = 'settled'), 0)::bigint,
         coalesce(sum(r.actual_micros) filter (where r.status = 'settled' and r.estimated), 0)::bigint,
         coalesce(sum(r.reserved_micros) filter (where r.status = 'reserved'), 0)::bigint,
         (count(*) filter (where r.status = 'settled'))::integer,
         (count(*) filter (where r.status = 'settled' and r.estimated))::integer,
         coalesce(sum(r.input_tokens), 0)::bigint, coalesce(sum(r.output_tokens), 0)::bigint,
         coalesce(sum(r.cache_creation_input_tokens), 0)::bigint, coalesce(sum(r.cache_read_input_tokens), 0)::bigint,
         (count(*) filter (where r.status = 'settled' and r.batch_saving_micros > 0))::integer,
         coalesce(sum(r.batch_saving_micros) filter (where r.status = 'settled'), 0)::bigint
    from public.budget_reservations r
   where r.task_id = p_task_id and r.status <> 'released'
   group by r.task_id
$$;

revoke execute on all functions in schema public from public, anon, authenticated;
grant execute on all functions in schema public to service_role;
