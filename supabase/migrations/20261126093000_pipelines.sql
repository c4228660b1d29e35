-- Pipelines: research -> analyze -> report (mission pattern 2). Each stage is its own Inngest function, started by
-- the previous stage's event, and runs its agent work as an ordinary task. This migration holds what must not be
-- decided twice: which run owns a stage, and that a stage completes exactly once.
--
-- Life of a stage (inngest/functions/pipeline-*.ts drive it):
--   create_pipeline           the API records the pipeline and its three stages (pending), idempotent per key
--   start_pipeline_stage      a stage run claims its stage: CAS pending -> running (owner run_id); a duplicate run
--                             (a repeated event with another id) sees 'busy' or 'finished' and does nothing
--   set_pipeline_stage_task   the stage's agent task is attached (once)
--   complete_pipeline_stage   CAS running -> completed with the output; the report stage completes the pipeline
--   fail_pipeline_stage       the stage and its pipeline end failed, once
--
-- Error codes (SQLSTATE, class NSL = Nightshift pipeLines): NSL01 unknown pipeline or stage;
-- NSA01 unknown or disabled agent (as create_task).

create table public.pipelines (
  id              uuid primary key default gen_random_uuid(),
  topic           text not null check (length(topic) between 1 and 10000),
  -- The agent that writes the report (research unless the request named another; content drafts need approval).
  report_agent_id text not null references public.agents(id),
  status          text not null default 'queued' check (status in ('queued', 'running', 'completed', 'failed')),
  status_reason   text,
  -- The task whose result is the report (set when the report stage completes).
  report_task_id  uuid references public.tasks(id) on delete set null,
  api_key_id      text references public.api_keys(id),
  idempotency_key text check (length(idempotency_key) between 1 and 255),
  request_hash    text,
  created_at      timestamptz not null default now(),
  updated_at      timestamptz not null default now(),
  started_at      timestamptz,
  finished_at     timestamptz,
  check ((status in ('completed', 'failed')) = (finished_at is not null))
);

-- As tasks: idempotency per API key; keyless pipelines share one key space.
create unique index pipelines_idempotency on public.pipelines (api_key_id, idempotency_key) nulls not distinct
  where idempotency_key is not null;
create index pipelines_created on public.pipelines (created_at desc, id desc);

create table public.pipeline_stages (
  pipeline_id uuid not null references public.pipelines(id) on delete cascade,
  stage       text not null check (stage in ('research', 'analyze', 'report')),
  position    smallint not null check (position between 1 and 3),
  agent_id    text not null references public.agents(id),
  status      text not null default 'pending' check (status in ('pending', 'running', 'completed', 'failed')),
  -- The Inngest run that owns the stage; only it may complete it.
  run_id      text,
  -- The stage's agent task (its timeline, cost and approval live there).
  task_id     uuid references public.tasks(id) on delete set null,
  -- Small on purpose: the next stage's prompt is built from it and the API shows it. The full text stays in the
  -- task's result.
  output      jsonb check (output is null or octet_length(output::text) <= 131072),
  error       jsonb,
  -- How many times a run claimed the stage (1 normally; more only when a claiming step itself was re-run).
  attempts    integer not null default 0 check (attempts >= 0),
  started_at  timestamptz,
  finished_at timestamptz,
  updated_at  timestamptz not null default now(),
  primary key (pipeline_id, stage),
  unique (pipeline_id, position),
  check ((status = 'completed') = (output is not null)),
  check ((status in ('completed', 'failed')) = (finished_at is not null))
);

create index pipeline_stages_task on public.pipeline_stages (task_id) where task_id is not null;

alter table public.pipelines enable row level security;
alter table public.pipeline_stages enable row level security;

create trigger pipelines_touch before update on public.pipelines
  for each row execute function public.touch_updated_at();
create trigger pipeline_stages_touch before update on public.pipeline_stages
  for each row execute function public.touch_updated_at();

-- Creates a pipeline with its three pending stages, or returns the one an earlier request with the same
-- (api key, idempotency key) created. outcome: 'created' | 'replayed' (same body) | 'conflict' (other body).
create function public.create_pipeline(
  p_topic text,
  p_report_agent_id text,
  p_api_key_id text,
  p_idempotency_key text,
  p_request_hash text
) returns table (pipeline_id uuid, outcome text, status text, created_at timestamptz)
language plpgsql as $$
declare
  v_row public.pipelines;
  v_report_agent text := coalesce(p_report_agent_id, 'research');
begin
  if p_idempotency_key is not null then
    select * into v_row from public.pipelines p
     where p.api_key_id is not distinct from p_api_key_id and p.idempotency_key = p_idempotency_key;
    if found then
      return query select v_row.id,
        case when v_row.request_hash = p_request_hash then 'replayed' else 'conflict' end,
        v_row.status, v_row.created_at;
      return;
    end if;
  end if;

  if not exists (select 1 from public.agents a where a.id = 'research' and a.enabled) then
    raise exception 'unknown or disabled agent research' using errcode = 'NSA01';
  end if;
  if not exists (select 1 from public.agents a where a.id = v_report_agent and a.enabled) then
    raise exception 'unknown or disabled agent %', v_report_agent using errcode = 'NSA01';
  end if;

  insert into public.pipelines (topic, report_agent_id, api_key_id, idempotency_key, request_hash)
  values (p_topic, v_report_agent, p_api_key_id, p_idempotency_key, p_request_hash)
  on conflict (api_key_id, idempotency_key) where idempotency_key is not null do nothing
  returning * into v_row;

  if not found then
    -- A concurrent identical key won the insert: answer as its replay (or conflict).
    select * into v_row from public.pipelines p
     where p.api_key_id is not distinct from p_api_key_id and p.idempotency_key = p_idempotency_key;
    return query select v_row.id,
      case when v_row.request_hash = p_request_hash then 'replayed' else 'conflict' end,
      v_row.status, v_row.created_at;
    return;
  end if;

  insert into public.pipeline_stages (pipeline_id, stage, position, agent_id) values
    (v_row.id, 'research', 1, 'research'),
    (v_row.id, 'analyze', 2, 'research'),
    (v_row.id, 'report', 3, v_report_agent);

  return query select v_row.id, 'created'::text, v_row.status, v_row.created_at;
end $$;

-- A stage run claims its stage. outcome:
--   'started'   pending -> running, owned by p_run_id (the previous stage must be completed)
--   'resumed'   already running for this same run (its claiming step ran again after a crash)
--   'busy'      running for another run: a duplicated trigger event; do nothing
--   'finished'  already completed: never run a finished stage again
--   'failed'    the stage or its pipeline already failed
--   'not_ready' the previous stage has not completed (an out-of-order event); do nothing
-- Locks the stage row, so of two concurrent claims exactly one starts it.
create function public.start_pipeline_stage(p_pipeline_id uuid, p_stage text, p_run_id text)
returns table (outcome text, task_id uuid, attempts integer)
language plpgsql as $$
declare
  v_stage public.pipeline_stages;
  v_pipeline_status text;
begin
  if p_run_id is null or length(p_run_id) = 0 then
    raise exception 'start_pipeline_stage: run id is required' using errcode = '22023';
  end if;
  -- Lock order, as in every function here: the stage row, then the pipeline row.
  select * into v_stage from public.pipeline_stages s
   where s.pipeline_id = p_pipeline_id and s.stage = p_stage for update;
  select p.status into v_pipeline_status from public.pipelines p where p.id = p_pipeline_id;
  if not found or v_pipeline_status is null then
    raise exception 'unknown pipeline stage %/%', p_pipeline_id, p_stage using errcode = 'NSL01';
  end if;

  if v_stage.status = 'completed' then
    return query select 'finished'::text, v_stage.task_id, v_stage.attempts; return;
  end if;
  if v_stage.status = 'failed' or v_pipeline_status = 'failed' then
    return query select 'failed'::text, v_stage.task_id, v_stage.attempts; return;
  end if;
  if v_stage.status = 'running' then
    if v_stage.run_id = p_run_id then
      update public.pipeline_stages s set attempts = s.attempts + 1
       where s.pipeline_id = p_pipeline_id and s.stage = p_stage
       returning * into v_stage;
      return query select 'resumed'::text, v_stage.task_id, v_stage.attempts; return;
    end if;
    return query select 'busy'::text, v_stage.task_id, v_stage.attempts; return;
  end if;

  -- pending
  if exists (select 1 from public.pipeline_stages s
              where s.pipeline_id = p_pipeline_id and s.position = v_stage.position - 1 and s.status <> 'completed') then
    return query select 'not_ready'::text, v_stage.task_id, v_stage.attempts; return;
  end if;

  update public.pipeline_stages s
     set status = 'running', run_id = p_run_id, attempts = s.attempts + 1, started_at = now()
   where s.pipeline_id = p_pipeline_id and s.stage = p_stage
   returning * into v_stage;
  update public.pipelines p
     set status = 'running', started_at = coalesce(p.started_at, now())
   where p.id = p_pipeline_id and p.status = 'queued';
  return query select 'started'::text, v_stage.task_id, v_stage.attempts;
end $$;

-- Attaches the stage's agent task. The first task attached stays (a re-run step that created the same task by its
-- idempotency key passes the same id). Returns the stage's task id.
create function public.set_pipeline_stage_task(p_pipeline_id uuid, p_stage text, p_run_id text, p_task_id uuid)
returns uuid language plpgsql as $$
declare
  v_task uuid;
begin
  update public.pipeline_stages s
     set task_id = coalesce(s.task_id, p_task_id)
   where s.pipeline_id = p_pipeline_id and s.stage = p_stage and s.status = 'running' and s.run_id = p_run_id
   returning s.task_id into v_task;
  if not found then
    raise exception 'stage %/% is not running for run %', p_pipeline_id, p_stage, p_run_id using errcode = 'NSL01';
  end if;
  return v_task;
end $$;

-- Completes a stage exactly once: CAS running -> completed, only for the run that owns the stage. Completing the
-- report stage completes the pipeline and records the report's task. Returns true when the stage is completed by
-- this run — now, or by an earlier execution of the same step whose answer was lost (a crash after the commit);
-- false for any other run, and the stored output is never replaced.
create function public.complete_pipeline_stage(p_pipeline_id uuid, p_stage text, p_run_id text, p_output jsonb)
returns boolean language plpgsql as $$
declare
  v_stage public.pipeline_stages;
begin
  if p_output is null then
    raise exception 'complete_pipeline_stage: output is required' using errcode = '22023';
  end if;
  update public.pipeline_stages s
     set status = 'completed', output = p_output, error = null, finished_at = now()
   where s.pipeline_id = p_pipeline_id and s.stage = p_stage and s.status = 'running' and s.run_id = p_run_id
   returning * into v_stage;
  if not found then
    return exists (select 1 from public.pipeline_stages s
                    where s.pipeline_id = p_pipeline_id and s.stage = p_stage
                      and s.status = 'completed' and s.run_id = p_run_id);
  end if;
  if p_stage = 'report' then
    update public.pipelines p
       set status = 'completed', status_reason = null, report_task_id = v_stage.task_id, finished_at = now()
     where p.id = p_pipeline_id and p.status not in ('completed', 'failed');
  end if;
  return true;
end $$;

-- Fails a stage (pending or running) and its pipeline, once. Returns true only for the call that failed it.
create function public.fail_pipeline_stage(p_pipeline_id uuid, p_stage text, p_error jsonb, p_reason text)
returns boolean language plpgsql as $$
begin
  update public.pipeline_stages s
     set status = 'failed', error = coalesce(p_error, '{}'::jsonb), finished_at = now()
   where s.pipeline_id = p_pipeline_id and s.stage = p_stage and s.status in ('pending', 'running');
  if not found then
    return false;
  end if;
  update public.pipelines p
     set status = 'failed', status_reason = coalesce(p_reason, format('the %s stage failed', p_stage)),
         finished_at = now()
   where p.id = p_pipeline_id and p.status not in ('completed', 'failed');
  return true;
end $$;

-- As in the foundation: functions are executable by PUBLIC by default, which PostgREST would expose to anon.
-- Only the server may call them.
revoke execute on all functions in schema public from public, anon, authenticated;
grant execute on all functions in schema public to service_role;
