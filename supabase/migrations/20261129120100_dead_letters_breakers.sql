-- The night's safety net (docs/failures.md): a dead-letter queue the owner reviews and replays in the morning, and
-- circuit breakers shared by every instance (on Vercel every invocation is another process, so breaker state can
-- only live here). What must not be decided twice is decided in these functions, under a row lock:
--   fail_task_dead_letter  ends a task `failed` AND writes its one dead-letter record, in one transaction
--   replay_dead_letter     pending -> replayed with a new linked task; a repeat with the same Idempotency-Key
--                          returns the same task, any other repeat is told it was replayed (or discarded)
--   discard_dead_letter    pending -> discarded, with a note
--   breaker_acquire        may this call go out? closed: yes; open before next_probe_at: no (fail fast);
--                          open after it: exactly one caller becomes the probe (compare-and-set to half_open)
--   breaker_record         the call's outcome: N consecutive outage failures open the breaker; the probe's success
--                          closes it, its failure re-opens it with a doubled cool-down
-- Times come from the caller (p_now) so a run's durable clock and tests' manual clocks decide, not the database's.

-- Which task a replay re-ran (the dead letter says which task replayed it: replayed_task_id).
alter table public.tasks add column replay_of uuid references public.tasks(id) on delete set null;
create index tasks_replay_of on public.tasks (replay_of) where replay_of is not null;

create table public.dead_letters (
  id               uuid primary key default gen_random_uuid(),
  -- One record per failed task: a task that fails twice lands once.
  task_id          uuid not null unique references public.tasks(id) on delete cascade,
  agent_id         text not null references public.agents(id),
  prompt           text not null,
  input            jsonb,
  -- When the task was a pipeline stage: replay re-runs the pipeline from this stage.
  pipeline_id      uuid references public.pipelines(id) on delete set null,
  stage            text check (stage is null or stage in ('research', 'analyze', 'report')),
  -- provider_refused | provider_down | answer_corrupted | timeout | tool_failed | limit_hit | our_bug
  failure_kind     text not null check (failure_kind ~ '^[a-z][a-z_]{1,39}$'),
  -- One sentence a person understands (lib/failures.ts); never a fragment of a response body.
  summary          text not null check (length(summary) between 1 and 1000),
  -- The error chain [{ name, message, step, attempt }] with the raw detail kept beside the words.
  error            jsonb not null,
  failed_step      text,
  attempts         integer not null default 0 check (attempts >= 0),
  cost_micros      bigint not null default 0 check (cost_micros >= 0),
  -- The last steps of the task's timeline, as they were when it failed.
  last_steps       jsonb not null default '[]'::jsonb,
  status           text not null default 'pending' check (status in ('pending', 'replayed', 'discarded')),
  replayed_task_id uuid references public.tasks(id) on delete set null,
  replay_api_key_id text,
  replay_idempotency_key text check (length(replay_idempotency_key) between 1 and 255),
  discard_note     text check (length(discard_note) <= 2000),
  resolved_by      text,
  resolved_at      timestamptz,
  created_at       timestamptz not null default now(),
  check ((status = 'pending') = (resolved_at is null))
);
create index dead_letters_status_created on public.dead_letters (status, created_at desc, id desc);
create index dead_letters_created on public.dead_letters (created_at desc, id desc);
create index dead_letters_agent_created on public.dead_letters (agent_id, created_at desc);
alter table public.dead_letters enable row level security;

create table public.breakers (
  -- claude:<model>, claude-batches, web_fetch:<host>, resend, slack, telegram, callback:<host>
  dependency           text primary key check (length(dependency) between 1 and 300),
  state                text not null default 'closed' check (state in ('closed', 'open', 'half_open')),
  consecutive_failures integer not null default 0 check (consecutive_failures >= 0),
  -- Seconds of the current (or last) cool-down; doubles on every failed probe, reset when the breaker closes.
  cooldown_seconds     integer not null default 0 check (cooldown_seconds >= 0),
  opened_at            timestamptz,
  next_probe_at        timestamptz,
  probe_started_at     timestamptz,
  state_since          timestamptz not null default now(),
  last_error           text check (length(last_error) <= 1000),
  last_error_at        timestamptz,
  last_success_at      timestamptz,
  updated_at           timestamptz not null default now(),
  check ((state = 'closed') = (opened_at is null)),
  check ((state = 'open') <= (next_probe_at is not null)),
  check ((state = 'half_open') = (probe_started_at is not null))
);
alter table public.breakers enable row level security;

-- Ends a task `failed` and files its dead letter, in one transaction. A task that had already ended (completed,
-- cancelled, or failed before: a second failure handler) changes nothing and files nothing: outcome 'already_ended'.
-- What the task held is given back here too (open budget reservations, its concurrency slot).
create function public.fail_task_dead_letter(
  p_task_id uuid,
  p_failure_kind text,
  p_summary text,
  p_error jsonb,
  p_reason text,
  p_attempts integer
) returns table (outcome text, dead_letter_id uuid)
language plpgsql set search_path = '' as $$
#variable_conflict use_column
declare
  v_task public.tasks;
  v_id uuid;
  v_failed_step text;
  v_steps jsonb;
  v_pipeline uuid;
  v_stage text;
begin
  update public.tasks t
     set status = 'failed', error = p_error, status_reason = p_reason, finished_at = now()
   where t.id = p_task_id
     and t.status not in ('completed', 'failed', 'stopped', 'rejected', 'cancelled')
  returning * into v_task;
  if not found then
    return query select 'already_ended'::text, null::uuid;
    return;
  end if;

  select s.step_id into v_failed_step from public.task_steps s
   where s.task_id = p_task_id and s.status <> 'completed' order by s.id desc limit 1;
  select coalesce(jsonb_agg(x order by x.id), '[]'::jsonb) into v_steps from (
    select s.id, s.step_id, s.kind, s.status, s.detail, s.cost_micros, s.started_at, s.finished_at
      from public.task_steps s where s.task_id = p_task_id order by s.id desc limit 10
  ) x;
  select ps.pipeline_id, ps.stage into v_pipeline, v_stage
    from public.pipeline_stages ps where ps.task_id = p_task_id limit 1;

  insert into public.dead_letters (task_id, agent_id, prompt, input, pipeline_id, stage, failure_kind, summary, error,
                                   failed_step, attempts, cost_micros, last_steps)
  values (p_task_id, v_task.agent_id, v_task.prompt, v_task.input, v_pipeline, v_stage, p_failure_kind,
          left(p_summary, 1000), p_error, v_failed_step, greatest(coalesce(p_attempts, 0), 0), v_task.cost_micros, v_steps)
  on conflict (task_id) do nothing
  returning id into v_id;

  perform public.release_task_budget(p_task_id);
  delete from public.agent_slots s where s.task_id = p_task_id;
  return query select 'failed'::text, v_id;
end $$;

-- Replays a pending dead letter as a new task (same agent, prompt and input unless the owner edited them), linked
-- both ways. outcome: replayed | same (this Idempotency-Key replayed it before: the same task) | already_replayed |
-- discarded | not_found. An unknown or disabled agent raises NSA01 (as create_task).
create function public.replay_dead_letter(
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
  v_dl public.dead_letters;
  v_orig public.tasks;
  v_agent public.agents;
  v_task uuid;
begin
  select * into v_dl from public.dead_letters d where d.id = p_id for update;
  if not found then
    return query select 'not_found'::text, null::uuid, null::text;
    return;
  end if;
  if v_dl.status = 'replayed' then
    if p_idempotency_key is not null and v_dl.replay_idempotency_key = p_idempotency_key
       and v_dl.replay_api_key_id is not distinct from p_api_key_id then
      return query select 'same'::text, v_dl.replayed_task_id, v_dl.status;
    else
      return query select 'already_replayed'::text, v_dl.replayed_task_id, v_dl.status;
    end if;
    return;
  end if;
  if v_dl.status = 'discarded' then
    return query select 'discarded'::text, null::uuid, v_dl.status;
    return;
  end if;

  select * into v_agent from public.agents a where a.id = coalesce(p_agent_id, v_dl.agent_id) and a.enabled;
  if not found then
    raise exception 'unknown agent %', coalesce(p_agent_id, v_dl.agent_id) using errcode = 'NSA01';
  end if;
  select * into v_orig from public.tasks t where t.id = v_dl.task_id;

  insert into public.tasks (agent_id, prompt, input, priority, mode, require_approval, callback_url, api_key_id,
                            progress_total, replay_of)
  values (v_agent.id, coalesce(p_prompt, v_dl.prompt), v_dl.input, coalesce(v_orig.priority, 0),
          coalesce(v_orig.mode, 'now'), coalesce(v_orig.require_approval, false), v_orig.callback_url, p_api_key_id,
          v_agent.max_turns, v_dl.task_id)
  returning id into v_task;

  update public.dead_letters d
     set status = 'replayed', replayed_task_id = v_task, replay_api_key_id = p_api_key_id,
         replay_idempotency_key = p_idempotency_key, resolved_by = p_actor, resolved_at = now()
   where d.id = p_id;
  return query select 'replayed'::text, v_task, 'replayed'::text;
end $$;

-- Takes back a replay whose start event could not be sent (nothing was run): the entry is pending again.
create function public.undo_dead_letter_replay(p_id uuid, p_task_id uuid)
returns boolean language plpgsql set search_path = '' as $$
begin
  update public.dead_letters d
     set status = 'pending', replayed_task_id = null, replay_api_key_id = null, replay_idempotency_key = null,
         resolved_by = null, resolved_at = null
   where d.id = p_id and d.replayed_task_id = p_task_id and d.status = 'replayed';
  if not found then
    return false;
  end if;
  delete from public.tasks t where t.id = p_task_id and t.status = 'queued';
  return true;
end $$;

-- outcome: discarded | already_replayed | already_discarded | not_found
create function public.discard_dead_letter(p_id uuid, p_note text, p_actor text)
returns table (outcome text, task_id uuid)
language plpgsql set search_path = '' as $$
#variable_conflict use_column
declare
  v_dl public.dead_letters;
begin
  update public.dead_letters d
     set status = 'discarded', discard_note = left(p_note, 2000), resolved_by = p_actor, resolved_at = now()
   where d.id = p_id and d.status = 'pending'
  returning * into v_dl;
  if found then
    return query select 'discarded'::text, null::uuid;
    return;
  end if;
  select * into v_dl from public.dead_letters d where d.id = p_id;
  if not found then
    return query select 'not_found'::text, null::uuid;
  elsif v_dl.status = 'replayed' then
    return query select 'already_replayed'::text, v_dl.replayed_task_id;
  else
    return query select 'already_discarded'::text, null::uuid;
  end if;
end $$;

-- May a call to p_dependency go out now? role: 'call' (breaker closed), 'probe' (this caller is the one probe after
-- the cool-down) or 'refused' (fail fast; retry_at says when to come back). A probe that never reports back (its
-- process died) is replaced once p_probe_lease_seconds have passed.
create function public.breaker_acquire(p_dependency text, p_now timestamptz, p_probe_lease_seconds integer)
returns table (role text, state text, retry_at timestamptz, opened_at timestamptz, last_error text)
language plpgsql set search_path = '' as $$
#variable_conflict use_column
declare
  v_now timestamptz := coalesce(p_now, now());
  v_b public.breakers;
begin
  -- Fast path, no lock: a closed breaker (the normal case) costs one indexed read.
  select * into v_b from public.breakers b where b.dependency = p_dependency;
  if not found or v_b.state = 'closed' then
    return query select 'call'::text, 'closed'::text, null::timestamptz, null::timestamptz, v_b.last_error;
    return;
  end if;

  select * into v_b from public.breakers b where b.dependency = p_dependency for update;
  if v_b.state = 'closed' then
    return query select 'call'::text, 'closed'::text, null::timestamptz, null::timestamptz, v_b.last_error;
  elsif v_b.state = 'open' and v_now >= v_b.next_probe_at then
    update public.breakers b set state = 'half_open', probe_started_at = v_now, state_since = v_now, updated_at = now()
     where b.dependency = p_dependency;
    return query select 'probe'::text, 'half_open'::text, null::timestamptz, v_b.opened_at, v_b.last_error;
  elsif v_b.state = 'half_open' and v_now >= v_b.probe_started_at + make_interval(secs => p_probe_lease_seconds) then
    -- The last probe never reported (its process died): this caller probes instead.
    update public.breakers b set probe_started_at = v_now, updated_at = now() where b.dependency = p_dependency;
    return query select 'probe'::text, 'half_open'::text, null::timestamptz, v_b.opened_at, v_b.last_error;
  elsif v_b.state = 'half_open' then
    return query select 'refused'::text, 'half_open'::text,
      greatest(v_b.next_probe_at, v_b.probe_started_at + make_interval(secs => p_probe_lease_seconds)),
      v_b.opened_at, v_b.last_error;
  else
    return query select 'refused'::text, v_b.state, v_b.next_probe_at, v_b.opened_at, v_b.last_error;
  end if;
end $$;

-- Records a call's outcome. p_outage: the failure says the other side is down (5xx, 529, timeout, connection);
-- other failures (our bad request, a paced 429) and successes reset the failure count. transition: none | opened |
-- reopened | closed — the caller announces 'opened' and 'closed' (once each: the notice is keyed by opened_at).
create function public.breaker_record(
  p_dependency text,
  p_success boolean,
  p_outage boolean,
  p_error text,
  p_now timestamptz,
  p_threshold integer,
  p_base_cooldown_seconds integer,
  p_max_cooldown_seconds integer
) returns table (transition text, state text, next_probe_at timestamptz, opened_at timestamptz, cooldown_seconds integer)
language plpgsql set search_path = '' as $$
#variable_conflict use_column
declare
  v_now timestamptz := coalesce(p_now, now());
  v_b public.breakers;
  v_cool integer;
begin
  if p_success or not p_outage then
    -- Fast path: nothing to change on a closed breaker with no failures counted.
    select * into v_b from public.breakers b where b.dependency = p_dependency;
    if not found or (v_b.state = 'closed' and v_b.consecutive_failures = 0) then
      return query select 'none'::text, 'closed'::text, null::timestamptz, null::timestamptz, 0;
      return;
    end if;
  end if;

  insert into public.breakers (dependency, state_since) values (p_dependency, v_now) on conflict (dependency) do nothing;
  select * into v_b from public.breakers b where b.dependency = p_dependency for update;

  if p_success or not p_outage then
    if v_b.state = 'closed' then
      update public.breakers b set consecutive_failures = 0, last_success_at = case when p_success then v_now else b.last_success_at end,
             updated_at = now() where b.dependency = p_dependency;
      return query select 'none'::text, 'closed'::text, null::timestamptz, null::timestamptz, 0;
    else
      -- The other side answered: the outage is over.
      update public.breakers b
         set state = 'closed', consecutive_failures = 0, cooldown_seconds = 0, opened_at = null, next_probe_at = null,
             probe_started_at = null, state_since = v_now, last_success_at = v_now, updated_at = now()
       where b.dependency = p_dependency;
      return query select 'closed'::text, 'closed'::text, null::timestamptz, v_b.opened_at, 0;
    end if;
    return;
  end if;

  if v_b.state = 'half_open' then
    v_cool := least(greatest(v_b.cooldown_seconds, p_base_cooldown_seconds) * 2, p_max_cooldown_seconds);
    update public.breakers b
       set state = 'open', probe_started_at = null, cooldown_seconds = v_cool,
           next_probe_at = v_now + make_interval(secs => v_cool), consecutive_failures = b.consecutive_failures + 1,
           state_since = v_now, last_error = left(p_error, 1000), last_error_at = v_now, updated_at = now()
     where b.dependency = p_dependency;
    return query select 'reopened'::text, 'open'::text, v_now + make_interval(secs => v_cool), v_b.opened_at, v_cool;
  elsif v_b.state = 'open' then
    -- A call that went out before the breaker opened: noted, nothing changes.
    update public.breakers b set last_error = left(p_error, 1000), last_error_at = v_now, updated_at = now()
     where b.dependency = p_dependency;
    return query select 'none'::text, 'open'::text, v_b.next_probe_at, v_b.opened_at, v_b.cooldown_seconds;
  elsif v_b.consecutive_failures + 1 >= p_threshold then
    v_cool := least(p_base_cooldown_seconds, p_max_cooldown_seconds);
    update public.breakers b
       set state = 'open', opened_at = v_now, cooldown_seconds = v_cool, next_probe_at = v_now + make_interval(secs => v_cool),
           consecutive_failures = b.consecutive_failures + 1, state_since = v_now,
           last_error = left(p_error, 1000), last_error_at = v_now, updated_at = now()
     where b.dependency = p_dependency;
    return query select 'opened'::text, 'open'::text, v_now + make_interval(secs => v_cool), v_now, v_cool;
  else
    update public.breakers b
       set consecutive_failures = b.consecutive_failures + 1, last_error = left(p_error, 1000), last_error_at = v_now,
           updated_at = now()
     where b.dependency = p_dependency;
    return query select 'none'::text, 'closed'::text, null::timestamptz, null::timestamptz, 0;
  end if;
end $$;

-- Back to running after a dependency wait (start_task then takes it as any running task).
create function public.resume_dependency_wait(p_task_id uuid)
returns boolean language plpgsql set search_path = '' as $$
begin
  update public.tasks t set status = 'running', status_reason = null
   where t.id = p_task_id and t.status = 'waiting_dependency';
  return found;
end $$;

revoke execute on all functions in schema public from public, anon, authenticated;
grant execute on all functions in schema public to service_role;
