-- Approvals: a human decides on a draft before a task goes on (mission pattern 6).
--
-- The decision is the database's, not the event's. A reviewer's decision is written by one compare-and-set
-- (pending -> decided); only then is `approval/decision.made` sent, as a wake-up. On wake-up and on timeout the
-- waiting function reads the decision from here, so a decision made at any moment — even one whose event the
-- engine missed (Inngest's early-event race) or lost — is honoured exactly once, at the latest at the deadline.
--
-- Life of an approval (inngest/approval.ts drives it):
--   request_approval  the function records the draft (pending, invisible) and the task waits
--   publish_approval  run only after step.waitForEvent is registered: the approval becomes visible/decidable
--   decide_approval   a reviewer (console or API) decides: CAS pending -> approved | approved_with_changes | rejected
--   expire_approval   at the deadline the auto action applies, once: 'reject' -> expired, 'approve' -> approved
--
-- Every time-dependent function takes p_now (default now()): tests drive time with the engine's manual clock and
-- the app passes its own time.
--
-- Error codes raised here (SQLSTATE, class NSP = Nightshift approvals):
--   NSP01 unknown task   NSP02 the task already finished   NSP03 unknown approval
--   22023 invalid argument (decision, channel, timeout, notes missing for approve_with_changes)

create table public.approvals (
  id           uuid primary key default gen_random_uuid(),
  task_id      uuid not null references public.tasks(id) on delete cascade,
  -- Part of durable step ids (approval-<stage>-<revision>-wait): short, lower case, no spaces.
  stage        text not null check (stage ~ '^[a-z][a-z0-9_]{0,39}$'),
  revision     integer not null check (revision between 1 and 1000),
  -- Small on purpose (it is shown on the review page); big drafts are artifacts referenced from here.
  draft        jsonb check (draft is null or octet_length(draft::text) <= 65536),
  status       text not null default 'pending'
               check (status in ('pending', 'approved', 'approved_with_changes', 'rejected', 'expired')),
  -- The reviewer's text: the changes asked for (approve_with_changes) or the feedback (reject).
  notes        text check (length(notes) <= 20000),
  decided_by   text check (length(decided_by) <= 200),
  decided_via  text check (decided_via in ('console', 'api', 'timeout')),
  -- What the deadline does when nobody decided: 'reject' (status expired) or 'approve' (status approved).
  auto_action  text not null default 'reject' check (auto_action in ('reject', 'approve')),
  requested_at timestamptz not null,
  -- Null until the function's wait is registered: an invisible approval cannot be seen or decided.
  visible_at   timestamptz,
  expires_at   timestamptz not null,
  decided_at   timestamptz,
  unique (task_id, stage, revision),
  check (expires_at > requested_at),
  check ((status = 'pending') = (decided_at is null)),
  check ((status = 'pending') = (decided_via is null)),
  check (status <> 'approved_with_changes' or length(btrim(notes)) > 0),
  check (status <> 'expired' or decided_via = 'timeout')
);

-- The review queue: visible pending approvals, oldest first.
create index approvals_review_queue on public.approvals (requested_at, id)
  where status = 'pending' and visible_at is not null;

alter table public.approvals enable row level security;

-- Back to `running` once a task has no pending approval left: its run is about to resume and take it from here
-- (finish it, revise, go on). Only a task that is still waiting is touched, so a cancelled task stays cancelled.
create function public.approval_task_resumes(p_task_id uuid)
returns void language sql as $$
  update public.tasks t
     set status = 'running', status_reason = null
   where t.id = p_task_id
     and t.status = 'waiting_approval'
     and not exists (select 1 from public.approvals a where a.task_id = p_task_id and a.status = 'pending')
$$;

-- Records a draft awaiting approval and makes its task wait. Idempotent on (task, stage, revision): a retried
-- step gets the row the first attempt created (with its original deadline), whatever it passes this time.
-- Lock order, as in every approval function: the approval row, then the task row.
create function public.request_approval(
  p_task_id uuid,
  p_stage text,
  p_revision integer,
  p_draft jsonb,
  p_timeout_seconds integer,
  p_auto_action text default 'reject',
  p_now timestamptz default now()
) returns public.approvals
language plpgsql as $$
declare
  v_row public.approvals;
  v_task public.task_status;
  v_now timestamptz := coalesce(p_now, now());
begin
  select * into v_row from public.approvals a
   where a.task_id = p_task_id and a.stage = p_stage and a.revision = p_revision;
  if not found then
    select t.status into v_task from public.tasks t where t.id = p_task_id;
    if not found then
      raise exception 'unknown task %', p_task_id using errcode = 'NSP01';
    end if;
    if v_task in ('completed', 'failed', 'stopped', 'rejected', 'cancelled') then
      raise exception 'task % already finished (%)', p_task_id, v_task using errcode = 'NSP02';
    end if;
    if p_timeout_seconds is null or p_timeout_seconds not between 1 and 2592000 then
      raise exception 'timeout_seconds must be between 1 and 2592000 (30 days), got %', p_timeout_seconds
        using errcode = '22023';
    end if;
    if coalesce(p_auto_action, 'reject') not in ('reject', 'approve') then
      raise exception 'auto_action must be reject or approve, got %', p_auto_action using errcode = '22023';
    end if;
    -- Two concurrent first attempts: the unique constraint lets one insert; the other reads its row.
    insert into public.approvals (task_id, stage, revision, draft, auto_action, requested_at, expires_at)
    values (p_task_id, p_stage, p_revision, p_draft, coalesce(p_auto_action, 'reject'), v_now,
            v_now + make_interval(secs => p_timeout_seconds))
    on conflict (task_id, stage, revision) do nothing
    returning * into v_row;
    if not found then
      select * into v_row from public.approvals a
       where a.task_id = p_task_id and a.stage = p_stage and a.revision = p_revision;
    end if;
  end if;

  -- A retry after the decision must not send the task back to waiting.
  if v_row.status = 'pending' then
    update public.tasks t
       set status = 'waiting_approval',
           status_reason = format('waiting for approval of %s (revision %s)', v_row.stage, v_row.revision)
     where t.id = v_row.task_id and t.status in ('queued', 'running', 'waiting_budget');
  end if;
  return v_row;
end $$;

-- Makes an approval visible (and so decidable), once: a retry keeps the first visible_at.
create function public.publish_approval(p_id uuid, p_now timestamptz default now())
returns public.approvals
language plpgsql as $$
declare
  v_row public.approvals;
begin
  update public.approvals a set visible_at = coalesce(p_now, now())
   where a.id = p_id and a.visible_at is null
  returning * into v_row;
  if not found then
    select * into v_row from public.approvals a where a.id = p_id;
    if not found then
      raise exception 'unknown approval %', p_id using errcode = 'NSP03';
    end if;
  end if;
  return v_row;
end $$;

-- Applies the auto action when the approval is still pending and its deadline has passed — exactly once, by a
-- compare-and-set. Returns the final state either way (a decision that landed first wins), with `applied` true
-- only for the call that applied it. No row: unknown approval.
create function public.expire_approval(p_id uuid, p_now timestamptz default now())
returns table (
  applied boolean, approval_id uuid, task_id uuid, status text, notes text, decided_by text,
  decided_at timestamptz, decided_via text, expires_at timestamptz
)
language plpgsql as $$
#variable_conflict use_column
declare
  v_row public.approvals;
  v_now timestamptz := coalesce(p_now, now());
begin
  update public.approvals a
     set status = case a.auto_action when 'approve' then 'approved' else 'expired' end,
         decided_via = 'timeout', decided_by = 'auto', decided_at = v_now
   where a.id = p_id and a.status = 'pending' and v_now >= a.expires_at
  returning * into v_row;
  if found then
    perform public.approval_task_resumes(v_row.task_id);
    return query select true, v_row.id, v_row.task_id, v_row.status, v_row.notes, v_row.decided_by,
                        v_row.decided_at, v_row.decided_via, v_row.expires_at;
    return;
  end if;
  return query select false, a.id, a.task_id, a.status, a.notes, a.decided_by, a.decided_at, a.decided_via,
                      a.expires_at
                 from public.approvals a where a.id = p_id;
end $$;

-- A reviewer's decision. One compare-and-set decides every race: of any number of concurrent calls exactly one
-- moves the approval from pending to decided. outcome:
--   decided    this call made the decision
--   repeat     the same decision with the same notes was already made (a retried request): success, no change
--   conflict   a different decision was made first (the answer states it)
--   expired    the deadline passed: the auto action applied (now, if nobody had applied it yet) and stands
--   not_found  no such approval, or not visible yet
-- A human decision made before the deadline stays a repeat/conflict after it; `expired` is about the auto action.
create function public.decide_approval(
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
language plpgsql as $$
#variable_conflict use_column
declare
  v_row public.approvals;
  v_status text;
  v_notes text := nullif(btrim(p_notes), '');
  v_now timestamptz := coalesce(p_now, now());
begin
  v_status := case p_decision
    when 'approve' then 'approved'
    when 'approve_with_changes' then 'approved_with_changes'
    when 'reject' then 'rejected'
  end;
  if v_status is null then
    raise exception 'decision must be approve, approve_with_changes or reject, got %', p_decision using errcode = '22023';
  end if;
  if p_via is null or p_via not in ('console', 'api') then
    raise exception 'via must be console or api, got %', p_via using errcode = '22023';
  end if;
  if v_status = 'approved_with_changes' and v_notes is null then
    raise exception 'approve_with_changes needs notes' using errcode = '22023';
  end if;

  -- The compare-and-set. A concurrent decider blocks on the row lock and then re-checks the WHERE against the
  -- winner's committed version (status is no longer pending), so it updates nothing.
  update public.approvals a
     set status = v_status, notes = v_notes, decided_by = p_actor, decided_via = p_via, decided_at = v_now
   where a.id = p_id and a.status = 'pending' and a.visible_at is not null and v_now < a.expires_at
  returning * into v_row;
  if found then
    perform public.approval_task_resumes(v_row.task_id);
    return query select 'decided'::text, v_row.id, v_row.task_id, v_row.status, v_row.notes, v_row.decided_by,
                        v_row.decided_at, v_row.decided_via;
    return;
  end if;

  -- Not decided by this call: say why. (A new statement, so it sees the winner's committed row.)
  select * into v_row from public.approvals a where a.id = p_id;
  if not found or v_row.visible_at is null then
    return query select 'not_found'::text, p_id, null::uuid, null::text, null::text, null::text,
                        null::timestamptz, null::text;
    return;
  end if;

  if v_row.status = 'pending' then
    -- Still pending, so the deadline has passed: the auto action applies now (once, whoever gets there first;
    -- a concurrent caller whose clock was still before the deadline may have decided instead).
    perform public.expire_approval(p_id, v_now);
    select * into v_row from public.approvals a where a.id = p_id;
  end if;

  return query select
    case
      when v_row.decided_via = 'timeout' then 'expired'
      when v_row.status = v_status and coalesce(v_row.notes, '') = coalesce(v_notes, '') then 'repeat'
      else 'conflict'
    end,
    v_row.id, v_row.task_id, v_row.status, v_row.notes, v_row.decided_by, v_row.decided_at, v_row.decided_via;
end $$;

-- As in the foundation: functions are executable by PUBLIC by default, which PostgREST would expose to anon.
-- Only the server may call them.
revoke execute on all functions in schema public from public, anon, authenticated;
grant execute on all functions in schema public to service_role;
