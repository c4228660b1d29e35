-- Agent to agent across deployments, and webhook sources managed through the API.
--
-- Peers: another Nightshift deployment this one may hand a finished task's result to (its "next hop"). A peer is a
-- row: the peer's base URL, the webhook source on the peer that starts a task from the hop, and the name of the
-- environment variable holding the `whsec_` secret both sides share (never stored, returned or logged; the peer
-- verifies with a webhook source naming a variable holding the same secret). A task records its next hop when it
-- is submitted; when it completes, its result is delivered to the peer as a signed Standard Webhooks request
-- (kind 'peer', webhook-id `msg_task_hop_<task id>`), and the peer's inbound route deduplicates on that id.
--
-- Webhook sources: created and changed through one audited function (save_webhook_source), like agent settings.
--
-- Error codes raised here (SQLSTATE, class NSW = webhooks/peers):
--   NSW01 unknown or disabled peer   NSW02 unknown webhook source   NSW03 webhook source exists already
--   22023 invalid argument (unknown field, bad value)

create table public.peers (
  name             text primary key check (name ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
  description      text not null default '' check (length(description) <= 500),
  -- The peer deployment's origin (and optional path prefix), http(s), no trailing slash.
  base_url         text not null check (base_url ~ '^https?://[^\s/?#]+(/[^\s?#]*[^\s?#/])?$' and length(base_url) <= 2048),
  -- The webhook source on the peer: the hop is POSTed to <base_url>/api/webhooks/<source>.
  source           text not null check (source ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
  -- The environment variable holding the shared `whsec_` secret that signs hops to this peer.
  secret_env_name  text not null check (secret_env_name ~ '^[A-Z][A-Z0-9_]{2,63}$'),
  enabled          boolean not null default true,
  created_at       timestamptz not null default now(),
  updated_at       timestamptz not null default now()
);
alter table public.peers enable row level security;
create trigger peers_touch before update on public.peers
  for each row execute function public.touch_updated_at();

-- The peer a task's result goes to when it completes (null: none).
alter table public.tasks add column next_hop text references public.peers(name) on update cascade on delete set null;

-- A delivery signed with another secret than NIGHTSHIFT_WEBHOOK_SECRET (a peer's shared secret), by variable name.
alter table public.webhook_deliveries
  add column secret_env_name text check (secret_env_name is null or secret_env_name ~ '^[A-Z][A-Z0-9_]{2,63}$');

-- submit_task with a next hop: the task, its start event and its hop are recorded in one transaction (a task never
-- runs without the hop it was submitted with). An unknown or disabled peer records nothing.
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
  p_next_hop text
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
    p_require_approval, p_callback_url, p_idempotency_key, p_request_hash);
  if v_t.outcome = 'created' then
    update public.tasks t set next_hop = p_next_hop where t.id = v_t.task_id;
  end if;
  return query select v_t.task_id, v_t.outcome, v_t.status, v_t.created_at;
end $$;

-- Opens the hop delivery of a completed task with a next hop (or finds it, on a retried step): the payload is built
-- here from the task row, so what is sent is what the database holds. Returns nothing when there is nothing to send
-- (no hop, not completed, peer gone or disabled).
create function public.open_task_hop(p_task_id uuid)
returns setof public.webhook_deliveries
language plpgsql set search_path = '' as $$
declare
  v_t public.tasks;
  v_p public.peers;
  v_msg text := 'msg_task_hop_' || p_task_id;
begin
  select * into v_t from public.tasks t where t.id = p_task_id;
  if not found or v_t.next_hop is null or v_t.status <> 'completed' then
    return;
  end if;
  select * into v_p from public.peers p where p.name = v_t.next_hop;
  if not found or not v_p.enabled then
    return;
  end if;
  insert into public.webhook_deliveries (message_id, task_id, kind, event_type, url, payload, secret_env_name)
  values (v_msg, p_task_id, 'peer', 'task.hop', v_p.base_url || '/api/webhooks/' || v_p.source,
    jsonb_build_object(
      'type', 'task.hop',
      'timestamp', coalesce(v_t.finished_at, now()),
      'task_id', v_t.id,
      'agent', v_t.agent_id,
      'status', v_t.status,
      'prompt', left(v_t.prompt, 2000),
      'result', v_t.result,
      'cost_micros', v_t.cost_micros,
      'peer', v_p.name
    )::text,
    v_p.secret_env_name)
  on conflict (message_id) do nothing;
  return query select * from public.webhook_deliveries d where d.message_id = v_msg;
end $$;

-- ------------------------------------------------------------------------------------- webhook sources, audited

-- One row per change of a webhook source: who, when, each field { from, to } (secret_env_names are variable names,
-- never secrets). Written only by save_webhook_source, in the statement that makes the change.
create table public.webhook_source_changes (
  id          bigint generated always as identity primary key,
  source      text not null,
  actor       text not null check (length(actor) between 1 and 200),
  action      text not null check (action in ('create', 'update')),
  changes     jsonb not null check (jsonb_typeof(changes) = 'object'),
  changed_at  timestamptz not null default now()
);
create index webhook_source_changes_source on public.webhook_source_changes (source, changed_at desc, id desc);
alter table public.webhook_source_changes enable row level security;

-- Creates (p_create) or changes a webhook source and records the change, in one statement under the row's lock.
-- p_fields holds only the fields to set. Returns the row after the change and the audit row's id (null: nothing
-- differed). The table's own checks (name, secret variable names, agent) still apply.
create function public.save_webhook_source(p_name text, p_fields jsonb, p_actor text, p_create boolean)
returns table (source jsonb, change_id bigint)
language plpgsql set search_path = '' as $$
#variable_conflict use_column
declare
  v_allowed constant text[] := array['agent_id', 'description', 'prompt_template', 'input_mapping', 'mode',
    'require_approval', 'callback_url', 'secret_env_names', 'enabled'];
  v_old public.webhook_sources;
  v_new public.webhook_sources;
  v_key text;
  v_changes jsonb := '{}'::jsonb;
  v_change_id bigint;
begin
  if p_fields is null or jsonb_typeof(p_fields) <> 'object' then
    raise exception 'fields must be a JSON object' using errcode = '22023';
  end if;
  if p_actor is null or length(p_actor) not between 1 and 200 then
    raise exception 'actor is required' using errcode = '22023';
  end if;
  for v_key in select jsonb_object_keys(p_fields) loop
    if not v_key = any(v_allowed) then
      raise exception 'unknown or read-only field %', v_key using errcode = '22023';
    end if;
  end loop;

  if p_create then
    insert into public.webhook_sources (name, agent_id, description, prompt_template, input_mapping, mode,
                                        require_approval, callback_url, secret_env_names, enabled)
    values (p_name, p_fields->>'agent_id', coalesce(p_fields->>'description', ''), p_fields->>'prompt_template',
            coalesce(p_fields->'input_mapping', '{}'::jsonb), coalesce((p_fields->>'mode')::public.task_mode, 'now'),
            coalesce((p_fields->>'require_approval')::boolean, false), p_fields->>'callback_url',
            array(select jsonb_array_elements_text(p_fields->'secret_env_names')),
            coalesce((p_fields->>'enabled')::boolean, true))
    on conflict (name) do nothing
    returning * into v_new;
    if not found then
      raise exception 'webhook source % exists already', p_name using errcode = 'NSW03';
    end if;
    select jsonb_object_agg(k, jsonb_build_object('from', null, 'to', to_jsonb(v_new)->k)) into v_changes
      from unnest(v_allowed) k;
    insert into public.webhook_source_changes (source, actor, action, changes)
    values (p_name, p_actor, 'create', v_changes) returning id into v_change_id;
    return query select to_jsonb(v_new), v_change_id;
    return;
  end if;

  select * into v_old from public.webhook_sources s where s.name = p_name for update;
  if not found then
    raise exception 'unknown webhook source %', p_name using errcode = 'NSW02';
  end if;
  update public.webhook_sources s set
    agent_id = coalesce(p_fields->>'agent_id', s.agent_id),
    description = coalesce(p_fields->>'description', s.description),
    prompt_template = coalesce(p_fields->>'prompt_template', s.prompt_template),
    input_mapping = coalesce(p_fields->'input_mapping', s.input_mapping),
    mode = coalesce((p_fields->>'mode')::public.task_mode, s.mode),
    require_approval = coalesce((p_fields->>'require_approval')::boolean, s.require_approval),
    -- A JSON null clears the callback URL; an absent key keeps it.
    callback_url = case when p_fields ? 'callback_url' then p_fields->>'callback_url' else s.callback_url end,
    secret_env_names = case when p_fields ? 'secret_env_names'
                            then array(select jsonb_array_elements_text(p_fields->'secret_env_names'))
                            else s.secret_env_names end,
    enabled = coalesce((p_fields->>'enabled')::boolean, s.enabled)
  where s.name = p_name
  returning * into v_new;

  for v_key in select jsonb_object_keys(p_fields) loop
    if (to_jsonb(v_old)->v_key) is distinct from (to_jsonb(v_new)->v_key) then
      v_changes := v_changes || jsonb_build_object(v_key,
        jsonb_build_object('from', to_jsonb(v_old)->v_key, 'to', to_jsonb(v_new)->v_key));
    end if;
  end loop;
  if v_changes <> '{}'::jsonb then
    insert into public.webhook_source_changes (source, actor, action, changes)
    values (p_name, p_actor, 'update', v_changes) returning id into v_change_id;
  end if;
  return query select to_jsonb(v_new), v_change_id;
end $$;

revoke execute on function public.submit_task_with_hop(text, text, text, text, jsonb, smallint, public.task_mode,
  boolean, text, text, text, text) from public, anon, authenticated;
revoke execute on function public.open_task_hop(uuid) from public, anon, authenticated;
revoke execute on function public.save_webhook_source(text, jsonb, text, boolean) from public, anon, authenticated;
grant execute on function public.submit_task_with_hop(text, text, text, text, jsonb, smallint, public.task_mode,
  boolean, text, text, text, text) to service_role;
grant execute on function public.open_task_hop(uuid) to service_role;
grant execute on function public.save_webhook_source(text, jsonb, text, boolean) to service_role;
