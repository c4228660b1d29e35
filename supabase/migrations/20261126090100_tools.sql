-- Agent tools: the side-effect ledger that makes every side-effecting tool call run at most once per
-- (task, tool call), and the artifacts table where large outputs live so that step outputs stay small.
-- RLS is on and no policy grants anon/authenticated anything: only the server (service_role) reads or writes.

-- One row per side-effecting tool call. The key is (task_id, tool_use_id): Claude's tool_use id is stable across a
-- retried tool step, because the model turn that produced it is itself a memoized step (`turn-N`) — a retried step
-- replays the same content blocks, so the same id comes back, and the ledger recognises the call.
create table public.side_effects (
  id               bigint generated always as identity primary key,
  task_id          uuid not null references public.tasks(id) on delete cascade,
  tool_use_id      text not null check (length(tool_use_id) between 1 and 255),
  tool             text not null check (tool ~ '^[a-z][a-z0-9_]{0,63}$'),
  -- SHA-256 of the canonical JSON of the validated input: the same tool_use_id with a different request is a bug
  -- (or a non-deterministic replay) and is answered with 'conflict', never with someone else's result.
  request_hash     text not null check (request_hash ~ '^[0-9a-f]{64}$'),
  -- A small, human-readable record of what the call does (an email's recipients and text, an artifact's name),
  -- for the audit trail and for dry runs. Never the whole of a large payload.
  request          jsonb,
  status           text not null check (status in ('claimed', 'completed', 'failed')),
  result           jsonb,
  error            text,
  attempts         integer not null default 1 check (attempts >= 1),
  -- The current claim: whoever holds this token runs the effect until lease_expires_at.
  claim_token      uuid not null default gen_random_uuid(),
  claimed_at       timestamptz not null default now(),
  lease_expires_at timestamptz,
  completed_at     timestamptz,
  created_at       timestamptz not null default now(),
  updated_at       timestamptz not null default now(),
  unique (task_id, tool_use_id),
  check ((status = 'claimed') = (lease_expires_at is not null)),
  check ((status = 'completed') = (completed_at is not null))
);

create index side_effects_task on public.side_effects (task_id, created_at);

-- Large outputs of a task (reports, drafts, datasets). At most one artifact per tool call: the unique key backs the
-- ledger up, so even a save that escaped the ledger cannot store the same call's artifact twice.
create table public.artifacts (
  id           uuid primary key default gen_random_uuid(),
  task_id      uuid not null references public.tasks(id) on delete cascade,
  tool_use_id  text check (length(tool_use_id) between 1 and 255),
  name         text not null check (length(name) between 1 and 200),
  content_type text not null check (content_type in ('text/plain', 'text/markdown', 'application/json')),
  content      text not null,
  bytes        integer not null check (bytes >= 0),
  sha256       text not null check (sha256 ~ '^[0-9a-f]{64}$'),
  created_at   timestamptz not null default now(),
  unique (task_id, tool_use_id)
);

create index artifacts_task on public.artifacts (task_id, created_at);

alter table public.side_effects enable row level security;
alter table public.artifacts enable row level security;

create trigger side_effects_touch before update on public.side_effects
  for each row execute function public.touch_updated_at();

-- Claims the right to perform a side effect, or tells the caller why not. One statement decides every race:
-- INSERT ... ON CONFLICT DO UPDATE locks the existing row and re-checks its WHERE against the latest committed
-- version, so of any number of concurrent callers exactly one gets the claim.
--
-- outcome:
--   'claimed'     the caller must run the effect, then complete_side_effect (or fail_side_effect) with the token;
--   'completed'   it already ran: `result` is the stored result, do not run it again;
--   'in_progress' someone holds a live claim: retry after lease_expires_at;
--   'conflict'    this (task, tool_use_id) was claimed for a different request.
--
-- Re-claiming: a 'failed' row (the runner reported, before or instead of acting, that retrying is safe) and a
-- 'claimed' row whose lease has expired can be claimed again. The expired lease is the at-most-once trade-off: a
-- runner that crashed after acting but before completing leaves a claim that nobody can tell apart from one that
-- crashed before acting. Never re-claiming would strand the task forever; re-claiming after the lease risks running
-- the effect a second time in exactly that window. We re-claim, and close the window downstream: the runner passes
-- the ledger key to the provider as its idempotency key (Resend's `Idempotency-Key`, honoured for 24 hours), so
-- the provider drops the second send of a claim that did act. An effect whose provider offers no such key is
-- at-most-once everywhere except in that crash window. The lease must be longer than the effect can take.
create function public.claim_side_effect(
  p_task_id uuid,
  p_tool_use_id text,
  p_tool text,
  p_request_hash text,
  p_lease_seconds integer,
  p_request jsonb default null,
  p_now timestamptz default now()
) returns table (outcome text, result jsonb, claim_token uuid, attempts integer, lease_expires_at timestamptz)
language plpgsql as $$
declare
  v_now   timestamptz := coalesce(p_now, now());
  v_lease interval;
  v_row   public.side_effects;
begin
  if p_lease_seconds is null or p_lease_seconds < 1 or p_lease_seconds > 86400 then
    raise exception 'claim_side_effect: lease must be 1..86400 seconds, got %', p_lease_seconds using errcode = '22023';
  end if;
  v_lease := make_interval(secs => p_lease_seconds);

  insert into public.side_effects as s (task_id, tool_use_id, tool, request_hash, request, status, claimed_at,
                                        lease_expires_at)
  values (p_task_id, p_tool_use_id, p_tool, p_request_hash, p_request, 'claimed', v_now, v_now + v_lease)
  on conflict (task_id, tool_use_id) do update
     set status = 'claimed',
         attempts = s.attempts + 1,
         claim_token = gen_random_uuid(),
         claimed_at = v_now,
         lease_expires_at = v_now + v_lease,
         error = null
   where s.request_hash = excluded.request_hash
     and (s.status = 'failed' or (s.status = 'claimed' and s.lease_expires_at <= v_now))
  returning * into v_row;

  if found then
    return query select 'claimed'::text, null::jsonb, v_row.claim_token, v_row.attempts, v_row.lease_expires_at;
    return;
  end if;

  -- Not ours: the row exists (ON CONFLICT waited for any concurrent inserter to commit). A new statement sees it.
  select * into v_row from public.side_effects s where s.task_id = p_task_id and s.tool_use_id = p_tool_use_id;
  if not found then
    raise exception 'claim_side_effect: ledger row for % vanished', p_tool_use_id using errcode = 'NSE01';
  end if;
  return query select
    case
      when v_row.request_hash <> p_request_hash then 'conflict'
      when v_row.status = 'completed' then 'completed'
      else 'in_progress'
    end,
    case when v_row.request_hash = p_request_hash and v_row.status = 'completed' then v_row.result end,
    null::uuid, v_row.attempts, v_row.lease_expires_at;
end $$;

-- Records the result of an effect that ran. The first completion wins and is never changed; a later one (a stale
-- claimer that acted after its lease expired) gets the stored result back with outcome 'already_completed'.
-- A completion is accepted whatever the claim token: if the effect ran, the ledger must say so.
create function public.complete_side_effect(
  p_task_id uuid,
  p_tool_use_id text,
  p_result jsonb,
  p_now timestamptz default now()
) returns table (outcome text, result jsonb)
language plpgsql as $$
declare
  v_row public.side_effects;
begin
  update public.side_effects s
     set status = 'completed', result = p_result, completed_at = coalesce(p_now, now()), lease_expires_at = null,
         error = null
   where s.task_id = p_task_id and s.tool_use_id = p_tool_use_id and s.status <> 'completed'
  returning * into v_row;
  if found then
    return query select 'completed'::text, v_row.result;
    return;
  end if;
  select * into v_row from public.side_effects s where s.task_id = p_task_id and s.tool_use_id = p_tool_use_id;
  if not found then
    raise exception 'complete_side_effect: no claim for tool call %', p_tool_use_id using errcode = 'NSE02';
  end if;
  return query select 'already_completed'::text, v_row.result;
end $$;

-- Releases a claim whose runner knows that running the effect again is safe (it did not act, or the provider
-- deduplicates by the ledger key). Only the current claim holder can release it, so a stale runner cannot free a
-- claim someone else now holds. Returns false when the token is not the current claim.
create function public.fail_side_effect(
  p_task_id uuid,
  p_tool_use_id text,
  p_claim_token uuid,
  p_error text
) returns boolean
language plpgsql as $$
begin
  update public.side_effects s
     set status = 'failed', error = left(p_error, 2000), lease_expires_at = null
   where s.task_id = p_task_id and s.tool_use_id = p_tool_use_id and s.status = 'claimed'
     and s.claim_token = p_claim_token;
  return found;
end $$;

-- Stores an artifact once per (task, tool call); the database computes its size and SHA-256 so they always match
-- the stored text. A repeated call returns the first artifact (created = false) without storing anything.
create function public.save_artifact(
  p_task_id uuid,
  p_tool_use_id text,
  p_name text,
  p_content_type text,
  p_content text
) returns table (artifact_id uuid, bytes integer, sha256 text, created boolean)
language plpgsql as $$
declare
  v_bytes bytea := convert_to(p_content, 'UTF8');
  v_row   public.artifacts;
begin
  insert into public.artifacts (task_id, tool_use_id, name, content_type, content, bytes, sha256)
  values (p_task_id, p_tool_use_id, p_name, p_content_type, p_content, octet_length(v_bytes),
          encode(sha256(v_bytes), 'hex'))
  on conflict (task_id, tool_use_id) do nothing
  returning * into v_row;
  if found then
    return query select v_row.id, v_row.bytes, v_row.sha256, true;
    return;
  end if;
  -- A NULL tool_use_id never conflicts, so reaching here means this tool call already stored its artifact.
  select * into v_row from public.artifacts a where a.task_id = p_task_id and a.tool_use_id = p_tool_use_id;
  return query select v_row.id, v_row.bytes, v_row.sha256, false;
end $$;

-- Functions are executable by PUBLIC by default, which PostgREST would expose to anon. Only the server may call them.
revoke execute on all functions in schema public from public, anon, authenticated;
grant execute on all functions in schema public to service_role;
