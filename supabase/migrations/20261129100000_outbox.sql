-- The submission outbox: work and the event that starts it are recorded in ONE transaction, and a relay
-- (inngest/outbox-relay.ts) sends pending events later, in batches. So a process that dies between "recorded" and
-- "sent" loses nothing, a failing event API never undoes recorded work, and `lib/` never needs the Inngest client.
-- Every event carries a stable id, so a second send of the same row (a relay that died after sending but before
-- marking it sent) is dropped by Inngest; the lease below keeps two relays from even trying in the normal case.

create table public.outbox (
  id           bigint generated always as identity primary key,
  -- The Inngest event id (e.g. task-run-<task id>). Unique: recording the same event twice records it once.
  event_id     text not null unique check (length(event_id) between 1 and 300),
  name         text not null check (name ~ '^[a-z0-9_.-]+/[a-z0-9_.-]+$'),
  data         jsonb not null check (jsonb_typeof(data) = 'object'),
  created_at   timestamptz not null default now(),
  -- A pending row may be claimed when available_at has passed; a claim pushes it forward (the lease), a failed
  -- send pushes it further (the backoff).
  available_at timestamptz not null default now(),
  attempts     integer not null default 0,
  last_error   text,
  sent_at      timestamptz
);
create index outbox_pending on public.outbox (available_at, id) where sent_at is null;
create index outbox_sent on public.outbox (sent_at) where sent_at is not null;
alter table public.outbox enable row level security;

-- Records one event (for SQL callers: the functions below, and any later function that records work and must
-- announce it). A repeat of an event id records nothing.
create function public.outbox_record(p_name text, p_data jsonb, p_event_id text)
returns void language sql set search_path = '' as $$
  insert into public.outbox (event_id, name, data) values (p_event_id, p_name, p_data)
  on conflict (event_id) do nothing
$$;

-- Records a batch of events `[{ "name", "data", "id" }]` (lib/outbox.ts recordEvents). Returns how many were new.
create function public.outbox_record_many(p_events jsonb)
returns integer language plpgsql set search_path = '' as $$
declare
  v_count integer;
begin
  if jsonb_typeof(p_events) <> 'array' then
    raise exception 'outbox_record_many: events must be an array' using errcode = '22023';
  end if;
  insert into public.outbox (event_id, name, data)
  select e ->> 'id', e ->> 'name', e -> 'data' from jsonb_array_elements(p_events) e
  on conflict (event_id) do nothing;
  get diagnostics v_count = row_count;
  return v_count;
end $$;

-- Claims up to p_limit pending events for one relay pass: FOR UPDATE SKIP LOCKED, so concurrent relays take
-- disjoint rows without waiting, and a lease (available_at := now + p_lease_seconds), so a row whose relay died
-- mid-send is retried after the lease and never by two live relays at once. Oldest first.
create function public.outbox_claim(p_limit integer, p_lease_seconds integer, p_now timestamptz default now())
returns table (id bigint, event_id text, name text, data jsonb, attempts integer)
language plpgsql set search_path = '' as $$
#variable_conflict use_column
declare
  v_now timestamptz := coalesce(p_now, now());
begin
  return query
  with picked as (
    select o.id from public.outbox o
     where o.sent_at is null and o.available_at <= v_now
     order by o.available_at, o.id
     limit greatest(1, least(coalesce(p_limit, 100), 1000))
       for update skip locked
  )
  update public.outbox o
     set available_at = v_now + make_interval(secs => greatest(1, coalesce(p_lease_seconds, 30))),
         attempts = o.attempts + 1
    from picked
   where o.id = picked.id
  returning o.id, o.event_id, o.name, o.data, o.attempts;
end $$;

-- Marks claimed rows sent. Returns how many were marked.
create function public.outbox_mark_sent(p_ids bigint[], p_now timestamptz default now())
returns integer language plpgsql set search_path = '' as $$
declare
  v_count integer;
begin
  update public.outbox o set sent_at = coalesce(p_now, now()), last_error = null
   where o.id = any(p_ids) and o.sent_at is null;
  get diagnostics v_count = row_count;
  return v_count;
end $$;

-- A send failed: the rows stay pending and become available again after a backoff that grows with the attempts
-- (1 s, 2 s, 4 s ... capped at 5 min), so a down event API is not hammered and nothing is ever dropped.
create function public.outbox_mark_failed(p_ids bigint[], p_error text, p_now timestamptz default now())
returns integer language plpgsql set search_path = '' as $$
declare
  v_count integer;
begin
  update public.outbox o
     set last_error = left(p_error, 1000),
         available_at = coalesce(p_now, now())
                        + make_interval(secs => least(300, power(2, least(o.attempts, 12) - 1))::double precision)
   where o.id = any(p_ids) and o.sent_at is null;
  get diagnostics v_count = row_count;
  return v_count;
end $$;

-- Deletes sent rows older than p_keep_seconds (the sweeper calls it). Inngest dedupes an event id for 24 h; rows
-- are kept longer than that so the outbox remains an audit trail of what was announced.
create function public.outbox_prune(p_keep_seconds integer, p_now timestamptz default now())
returns integer language plpgsql set search_path = '' as $$
declare
  v_count integer;
begin
  delete from public.outbox o
   where o.sent_at is not null and o.sent_at < coalesce(p_now, now()) - make_interval(secs => p_keep_seconds);
  get diagnostics v_count = row_count;
  return v_count;
end $$;

-- POST /api/tasks in one round trip: verify the API key, record the task (create_task's idempotency: same
-- (key, Idempotency-Key) + same body -> the same task; another body -> 'conflict') and its start event
-- `task/run.requested` (id task-run-<task id>), all in one transaction.
--   p_key_id / p_key_hash: the presented key's id and the SHA-256 of the whole key, or both null for callers that
--   have no key (console, cron, app events); p_key_hash null with a key id: a key the caller verified already
--   (it must still exist and be live). An unknown, revoked or deleted key -> outcome 'unauthorized' and
--   nothing is written. The key row is locked FOR KEY SHARE, so a concurrent delete waits for this transaction
--   (and then fails on the task's foreign key, as it would for any key with tasks) instead of making this insert
--   fail. The hash is compared in SQL: it is a digest of a 256-bit secret, so comparison timing reveals nothing.
-- outcome: 'created' | 'replayed' | 'conflict' | 'unauthorized'. NSA01: unknown or disabled agent.
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
  p_request_hash text
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
    perform public.outbox_record('task/run.requested',
      jsonb_build_object('task_id', v_task.task_id, 'agent', p_agent_id), 'task-run-' || v_task.task_id);
  end if;
  return query select v_task.task_id, v_task.outcome, v_task.status, v_task.created_at;
end $$;

-- POST /api/pipelines: record the pipeline (create_pipeline's idempotency) and `pipeline/run.requested`
-- (id pipeline-run-<pipeline id>) in one transaction.
create function public.submit_pipeline(
  p_topic text,
  p_report_agent_id text,
  p_api_key_id text,
  p_idempotency_key text,
  p_request_hash text
) returns table (pipeline_id uuid, outcome text, status text, created_at timestamptz)
language plpgsql set search_path = '' as $$
#variable_conflict use_column
declare
  v_p record;
begin
  select * into v_p from public.create_pipeline(p_topic, p_report_agent_id, p_api_key_id, p_idempotency_key,
    p_request_hash);
  if v_p.outcome = 'created' then
    perform public.outbox_record('pipeline/run.requested', jsonb_build_object('pipeline_id', v_p.pipeline_id),
      'pipeline-run-' || v_p.pipeline_id);
  end if;
  return query select v_p.pipeline_id, v_p.outcome, v_p.status, v_p.created_at;
end $$;

-- Cancel a task (cancel_task decides) and record `task/run.cancelled` (id task-cancelled-<task id>) with it.
create function public.cancel_task_announced(p_task_id uuid, p_reason text, p_actor text)
returns table (outcome text, status public.task_status)
language plpgsql set search_path = '' as $$
#variable_conflict use_column
declare
  v_c record;
begin
  select * into v_c from public.cancel_task(p_task_id, p_reason, p_actor);
  if v_c.outcome = 'cancelled' then
    perform public.outbox_record('task/run.cancelled',
      jsonb_build_object('task_id', p_task_id, 'reason', left(coalesce(p_reason, 'cancelled'), 500)),
      'task-cancelled-' || p_task_id);
  end if;
  return query select v_c.outcome, v_c.status;
end $$;

-- Decide an approval (decide_approval's compare-and-set) and record the wake-up `approval/decision.made`
-- (id approval-decision-<approval id>) in the same transaction. A repeat records nothing new (same id).
create function public.decide_approval_announced(
  p_id uuid,
  p_decision text,
  p_notes text,
  p_actor text,
  p_via text,
  p_now timestamptz default now()
) returns table (
  outcome text, approval_id uuid, task_id uuid, status text, notes text, decided_by text,
  decided_at timestamptz, decided_via text
)
language plpgsql set search_path = '' as $$
#variable_conflict use_column
declare
  v_d record;
begin
  select * into v_d from public.decide_approval(p_id, p_decision, p_notes, p_actor, p_via, p_now);
  if v_d.outcome in ('decided', 'repeat') then
    perform public.outbox_record('approval/decision.made',
      jsonb_build_object('approval_id', v_d.approval_id, 'task_id', v_d.task_id,
        'decision', case v_d.status when 'approved' then 'approve'
                                    when 'approved_with_changes' then 'approve_with_changes'
                                    else 'reject' end),
      'approval-decision-' || v_d.approval_id);
  end if;
  return query select v_d.outcome, v_d.approval_id, v_d.task_id, v_d.status, v_d.notes, v_d.decided_by,
    v_d.decided_at, v_d.decided_via;
end $$;

revoke execute on all functions in schema public from public, anon, authenticated;
grant execute on all functions in schema public to service_role;
