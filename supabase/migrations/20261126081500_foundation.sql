-- Nightshift foundation: agents with daily budgets, hashed API keys, tasks and their visible step timeline.
-- Money is integer micro-dollars (bigint) everywhere. RLS is on for every table and no policy grants the
-- anon or authenticated roles anything: only the server (service_role, which bypasses RLS) reads or writes.

create extension if not exists pgcrypto with schema extensions;

create table public.agents (
  id                  text primary key check (id ~ '^[a-z][a-z0-9_-]{1,39}$'),
  display_name        text not null,
  description         text not null default '',
  model               text not null,
  system_prompt       text not null,
  max_turns           integer not null default 8 check (max_turns between 1 and 200),
  max_tokens          integer not null default 1024 check (max_tokens between 1 and 64000),
  wall_clock_seconds  integer not null default 900 check (wall_clock_seconds between 10 and 86400),
  concurrency         integer not null default 2 check (concurrency between 1 and 100),
  daily_budget_micros bigint not null check (daily_budget_micros >= 0),
  budget_timezone     text not null default 'UTC',
  enabled             boolean not null default true,
  created_at          timestamptz not null default now(),
  updated_at          timestamptz not null default now()
);

-- A key is shown once as `ns_<key_id>_<secret>`; only SHA-256 of the whole key is stored. The key id is the
-- lookup handle, so the secret comparison itself happens in constant time in the app.
create table public.api_keys (
  id           text primary key check (id ~ '^[a-z0-9]{12}$'),
  name         text not null,
  key_hash     text not null check (key_hash ~ '^[0-9a-f]{64}$'),
  created_at   timestamptz not null default now(),
  last_used_at timestamptz,
  revoked_at   timestamptz
);

create type public.task_status as enum (
  'queued', 'running', 'waiting_budget', 'waiting_approval',
  'completed', 'failed', 'stopped', 'rejected', 'cancelled'
);

create type public.task_mode as enum ('now', 'batch');

create table public.tasks (
  id               uuid primary key default gen_random_uuid(),
  agent_id         text not null references public.agents(id),
  prompt           text not null check (length(prompt) between 1 and 100000),
  input            jsonb,
  priority         smallint not null default 0 check (priority between -100 and 100),
  mode             public.task_mode not null default 'now',
  require_approval boolean not null default false,
  callback_url     text,
  status           public.task_status not null default 'queued',
  status_reason    text,
  result           jsonb,
  error            jsonb,
  progress_done    integer not null default 0,
  progress_total   integer not null default 1,
  cost_micros      bigint not null default 0 check (cost_micros >= 0),
  api_key_id       text references public.api_keys(id),
  idempotency_key  text check (length(idempotency_key) between 1 and 255),
  request_hash     text,
  run_id           text,
  created_at       timestamptz not null default now(),
  updated_at       timestamptz not null default now(),
  started_at       timestamptz,
  finished_at      timestamptz
);

-- Idempotency is per API key: two clients may pick the same key string independently. NULLS NOT DISTINCT:
-- tasks created without an API key (cron, app events) share one key space instead of never conflicting.
create unique index tasks_idempotency on public.tasks (api_key_id, idempotency_key) nulls not distinct
  where idempotency_key is not null;
create index tasks_status_created on public.tasks (status, created_at desc, id desc);
create index tasks_created on public.tasks (created_at desc, id desc);
create index tasks_agent_created on public.tasks (agent_id, created_at desc);

-- The visible timeline of a task: one row per durable step, keyed by its deterministic step id.
create table public.task_steps (
  id            bigint generated always as identity primary key,
  task_id       uuid not null references public.tasks(id) on delete cascade,
  step_id       text not null,
  kind          text not null check (kind in ('model', 'tool', 'system')),
  status        text not null check (status in ('running', 'completed', 'failed')),
  detail        jsonb,
  input_tokens  integer not null default 0,
  output_tokens integer not null default 0,
  cost_micros   bigint not null default 0 check (cost_micros >= 0),
  started_at    timestamptz not null default now(),
  finished_at   timestamptz,
  unique (task_id, step_id)
);

alter table public.agents enable row level security;
alter table public.api_keys enable row level security;
alter table public.tasks enable row level security;
alter table public.task_steps enable row level security;

-- updated_at maintenance
create function public.touch_updated_at() returns trigger language plpgsql as $$
begin
  new.updated_at := now();
  return new;
end $$;

create trigger agents_touch before update on public.agents
  for each row execute function public.touch_updated_at();
create trigger tasks_touch before update on public.tasks
  for each row execute function public.touch_updated_at();

-- Creates a task, or returns the one an earlier request with the same (api key, idempotency key) created.
-- The unique index decides races: of two concurrent identical requests exactly one inserts.
-- outcome: 'created' | 'replayed' (same body) | 'conflict' (same key, different body).
create function public.create_task(
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
language plpgsql as $$
declare
  v_row public.tasks;
begin
  insert into public.tasks (agent_id, prompt, input, priority, mode, require_approval, callback_url,
                            api_key_id, idempotency_key, request_hash, progress_total)
  select p_agent_id, p_prompt, p_input, coalesce(p_priority, 0), coalesce(p_mode, 'now'),
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
    -- Nothing inserted and no idempotency key: the agent does not exist.
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

-- Moves a task into `running` for a run. Terminal tasks are left alone (returns false), so a retried or
-- duplicated run never resurrects a finished task.
create function public.start_task(p_task_id uuid, p_run_id text)
returns boolean language plpgsql as $$
begin
  update public.tasks
     set status = 'running', run_id = p_run_id, started_at = coalesce(started_at, now()), status_reason = null
   where id = p_task_id
     and status in ('queued', 'running', 'waiting_budget', 'waiting_approval');
  return found;
end $$;

-- Records one step of the timeline. Completing a step counts it into progress exactly once,
-- however often the step's body or this call is retried.
create function public.record_task_step(
  p_task_id uuid,
  p_step_id text,
  p_kind text,
  p_status text,
  p_detail jsonb,
  p_input_tokens integer,
  p_output_tokens integer,
  p_cost_micros bigint
) returns void language plpgsql as $$
begin
  -- A completed step is never changed again. ON CONFLICT DO UPDATE locks the existing row and checks the WHERE
  -- against its latest version, so of concurrent calls exactly one gets FOUND for a step's completion (a
  -- select ... for update finds no row to lock while the first insert is still uncommitted).
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

  -- The step's cost is shown on the timeline; the task's total is charged by the budget ledger's settle_budget,
  -- the one place money is counted.
  if found and p_status = 'completed' then
    update public.tasks
       set progress_done = progress_done + 1,
           progress_total = greatest(progress_total, progress_done + 1)
     where id = p_task_id;
  end if;
end $$;

-- Ends a task once. Only a non-terminal task can finish; the first finisher wins and later calls
-- (a retried step, a failure handler racing a completion) return false and change nothing.
create function public.finish_task(
  p_task_id uuid,
  p_status public.task_status,
  p_result jsonb,
  p_error jsonb,
  p_reason text
) returns boolean language plpgsql as $$
begin
  if p_status not in ('completed', 'failed', 'stopped', 'rejected', 'cancelled') then
    raise exception 'finish_task: % is not a terminal status', p_status using errcode = '22023';
  end if;
  update public.tasks
     set status = p_status, result = coalesce(p_result, result), error = p_error, status_reason = p_reason,
         finished_at = now(),
         progress_total = case when p_status = 'completed' then progress_done else progress_total end
   where id = p_task_id
     and status not in ('completed', 'failed', 'stopped', 'rejected', 'cancelled');
  return found;
end $$;

-- Marks a key used; returns its hash for the constant-time comparison in the app (null: unknown or revoked).
create function public.api_key_hash(p_key_id text)
returns text language sql stable as $$
  select k.key_hash from public.api_keys k where k.id = p_key_id and k.revoked_at is null
$$;

-- Functions are executable by PUBLIC by default, which PostgREST would expose to anon. Only the server may call them.
revoke execute on all functions in schema public from public, anon, authenticated;
grant execute on all functions in schema public to service_role;
alter default privileges in schema public revoke execute on functions from public, anon, authenticated;
