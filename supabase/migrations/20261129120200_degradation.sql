-- Graceful degradation (docs/failures.md): the research stage keeps its results in a cache keyed by the normalised
-- topic; a pipeline whose research cannot run continues from the freshest cached research and says so
-- (`degraded` on the pipeline and its stages). web_fetch keeps the last good copy of each page. And a failed pipeline
-- stage's dead letter replays the pipeline from that stage, reusing the finished stages' outputs.

create table public.research_cache (
  -- lower-case, punctuation dropped, whitespace collapsed (lib/research-cache.ts normaliseTopic)
  topic_key   text primary key check (length(topic_key) between 1 and 10000),
  topic       text not null,
  text        text not null check (length(text) between 1 and 200000),
  -- the URLs the research used (from its web_fetch calls)
  sources     jsonb not null default '[]'::jsonb,
  task_id     uuid references public.tasks(id) on delete set null,
  pipeline_id uuid references public.pipelines(id) on delete set null,
  cached_at   timestamptz not null default now()
);
alter table public.research_cache enable row level security;

-- The last good copy of each page web_fetch read (2xx), size-capped; served, with its date, when a later fetch of the
-- same URL fails on a network error or a 5xx, within a TTL.
create table public.web_page_cache (
  url          text primary key check (length(url) <= 4096),
  final_url    text not null,
  status       integer not null,
  content_type text,
  title        text,
  text         text not null check (octet_length(text) <= 262144),
  truncated    boolean not null default false,
  bytes        integer not null default 0,
  fetched_at   timestamptz not null default now()
);
alter table public.web_page_cache enable row level security;

-- { reason, cached_at } when a pipeline (or stage) was built from cached research.
alter table public.pipelines add column degraded jsonb;
alter table public.pipeline_stages add column degraded jsonb;
-- How many times the stage was reopened by a dead-letter replay: its new task is keyed by it.
alter table public.pipeline_stages add column replays integer not null default 0 check (replays >= 0);

-- A degraded pipeline's stages carry its mark as they complete, and its report says so in its text: the report is
-- read from the stage output, so the sentence goes at its top. (The research stage is marked by the app, which also
-- puts the sentence at the top of the cached research the analysis reads.)
create function public.pipeline_stage_inherit_degraded() returns trigger
language plpgsql set search_path = '' as $$
declare
  v_degraded jsonb;
begin
  if new.status = 'completed' and old.status is distinct from 'completed' then
    select p.degraded into v_degraded from public.pipelines p where p.id = new.pipeline_id;
    if v_degraded is not null then
      new.degraded := coalesce(new.degraded, v_degraded);
      if new.stage = 'report' and new.output ? 'text' then
        new.output := jsonb_set(new.output, '{text}', to_jsonb(
          format('Note: this report was built from cached research of %s (%s), because fresh research could not run: %s.',
                 left(v_degraded->>'cached_at', 10), v_degraded->>'cached_at', v_degraded->>'reason')
          || E'\n\n' || (new.output->>'text')));
      end if;
    end if;
  end if;
  return new;
end $$;

create trigger pipeline_stages_inherit_degraded before update on public.pipeline_stages
  for each row execute function public.pipeline_stage_inherit_degraded();

-- Reopens a failed pipeline from p_stage: that stage and the later ones go back to pending (their tasks, outputs and
-- errors cleared, the replay counted), the earlier stages keep their outputs, and the pipeline is running again.
-- false when the pipeline is not failed (nothing to replay).
create function public.reopen_pipeline_from_stage(p_pipeline_id uuid, p_stage text)
returns boolean language plpgsql set search_path = '' as $$
declare
  v_position smallint;
begin
  update public.pipelines p
     set status = 'running', status_reason = null, finished_at = null, degraded = null
   where p.id = p_pipeline_id and p.status = 'failed';
  if not found then
    return false;
  end if;
  select s.position into v_position from public.pipeline_stages s where s.pipeline_id = p_pipeline_id and s.stage = p_stage;
  update public.pipeline_stages s
     set status = 'pending', run_id = null, task_id = null, output = null, error = null, degraded = null,
         started_at = null, finished_at = null, replays = s.replays + case when s.stage = p_stage then 1 else 0 end
   where s.pipeline_id = p_pipeline_id and s.position >= v_position;
  return true;
end $$;

-- Replay, now also for pipeline stages: a dead letter of a pipeline stage reopens its pipeline from that stage
-- (outcome 'replayed_pipeline', pipeline_id set; the caller re-sends the stage's event) instead of creating a task.
drop function public.replay_dead_letter(uuid, text, text, text, text, text);
create function public.replay_dead_letter(
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

  if v_dl.pipeline_id is not null and v_dl.stage is not null then
    if not public.reopen_pipeline_from_stage(v_dl.pipeline_id, v_dl.stage) then
      return query select 'pipeline_not_failed'::text, null::uuid, v_dl.status, v_dl.pipeline_id, v_dl.stage, null::integer;
      return;
    end if;
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
                            progress_total, replay_of)
  values (v_agent.id, coalesce(p_prompt, v_dl.prompt), v_dl.input, coalesce(v_orig.priority, 0),
          coalesce(v_orig.mode, 'now'), coalesce(v_orig.require_approval, false), v_orig.callback_url, p_api_key_id,
          v_agent.max_turns, v_dl.task_id)
  returning id into v_task;

  update public.dead_letters d
     set status = 'replayed', replayed_task_id = v_task, replay_api_key_id = p_api_key_id,
         replay_idempotency_key = p_idempotency_key, resolved_by = p_actor, resolved_at = now()
   where d.id = p_id;
  return query select 'replayed'::text, v_task, 'replayed'::text, null::uuid, null::text, null::integer;
end $$;

revoke execute on all functions in schema public from public, anon, authenticated;
grant execute on all functions in schema public to service_role;
