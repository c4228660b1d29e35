-- The console and API an operator needs without SQL: agent settings changed through one audited function, and a
-- reviewer's edited draft published in place of the agent's.
--
-- Error codes raised here (SQLSTATE, class NSG = Nightshift agent settings):
--   NSG01 unknown agent   22023 invalid argument (unknown field, value out of range, unknown time zone)

-- ------------------------------------------------------------------------------------------ agent settings audit

-- One row per change of an agent's settings: who, when, and each changed field with its old and new value
-- (`changes` = { "<field>": { "from": <old>, "to": <new> } }). Written only by update_agent_settings, in the same
-- statement that changes the agent, so no change goes unrecorded and no record describes a change that did not
-- happen.
create table public.agent_changes (
  id         bigint generated always as identity primary key,
  agent_id   text not null references public.agents(id) on delete cascade,
  actor      text not null check (length(actor) between 1 and 200),
  changes    jsonb not null check (jsonb_typeof(changes) = 'object' and changes <> '{}'::jsonb),
  changed_at timestamptz not null default now()
);
create index agent_changes_agent on public.agent_changes (agent_id, changed_at desc, id desc);
alter table public.agent_changes enable row level security;

-- Changes an agent's settings and records the change, in one statement under the agent's row lock (a concurrent
-- change waits, then sees this one's values as its "from"). p_patch holds only the fields to change; a field whose
-- value equals the current one is no change and is left out of the audit. Returns the agent row after the change
-- and the audit row's id (null: nothing changed). The table's own checks (max_turns 1-200, ...) still apply.
create function public.update_agent_settings(p_agent_id text, p_patch jsonb, p_actor text)
returns table (agent jsonb, change_id bigint)
language plpgsql
set search_path = ''
as $$
#variable_conflict use_column
declare
  v_allowed constant text[] := array['daily_budget_micros', 'max_turns', 'max_tokens', 'wall_clock_seconds',
    'concurrency', 'model', 'requires_approval', 'approval_timeout_seconds', 'approval_auto_action',
    'budget_timezone', 'enabled'];
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
    enabled = coalesce((p_patch->>'enabled')::boolean, a.enabled)
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

-- ------------------------------------------------------------------------------------------ edit, then approve

-- The reviewer's own version of the draft: when set, it is what the task publishes as its result instead of the
-- agent's text. Only an approval approved by a person can carry one.
alter table public.approvals
  add column edited_text text check (length(edited_text) <= 200000),
  add constraint approvals_edited_only_when_approved
    check (edited_text is null or (status = 'approved' and decided_via in ('console', 'api')));

-- Approves a draft with the reviewer's edited text, in one transaction: decide_approval_announced decides (the same
-- compare-and-set, so every race, deadline and repeat rule is that of a plain approve, and the wake-up event is
-- recorded in the outbox), and only the call that decided writes the text, under the row lock the decision took. outcome as decide_approval's; a repeat is the same
-- approve with the same text, anything else already decided is a conflict.
create function public.approve_with_edit(
  p_id uuid,
  p_text text,
  p_actor text,
  p_via text,
  p_now timestamptz default now()
) returns table (
  outcome text, approval_id uuid, task_id uuid, status text, notes text, decided_by text,
  decided_at timestamptz, decided_via text, edited_text text
)
language plpgsql
set search_path = ''
as $$
#variable_conflict use_column
declare
  v_outcome text;
  v_row public.approvals;
begin
  if p_text is null or length(btrim(p_text)) = 0 then
    raise exception 'the edited text must not be empty' using errcode = '22023';
  end if;
  if length(p_text) > 200000 then
    raise exception 'the edited text is longer than 200000 characters' using errcode = '22023';
  end if;

  select d.outcome into v_outcome
    from public.decide_approval_announced(p_id, 'approve', null, p_actor, p_via, p_now) d;

  if v_outcome = 'decided' then
    update public.approvals a set edited_text = p_text where a.id = p_id returning * into v_row;
  else
    select * into v_row from public.approvals a where a.id = p_id;
    if v_outcome = 'repeat' and v_row.edited_text is distinct from p_text then
      v_outcome := 'conflict';
    end if;
  end if;

  if v_outcome = 'not_found' then
    return query select 'not_found'::text, p_id, null::uuid, null::text, null::text, null::text,
                        null::timestamptz, null::text, null::text;
    return;
  end if;
  return query select v_outcome, v_row.id, v_row.task_id, v_row.status, v_row.notes, v_row.decided_by,
                      v_row.decided_at, v_row.decided_via, v_row.edited_text;
end $$;

revoke execute on function public.update_agent_settings(text, jsonb, text) from public, anon, authenticated;
revoke execute on function public.approve_with_edit(uuid, text, text, text, timestamptz) from public, anon, authenticated;
grant execute on function public.update_agent_settings(text, jsonb, text) to service_role;
grant execute on function public.approve_with_edit(uuid, text, text, text, timestamptz) to service_role;
