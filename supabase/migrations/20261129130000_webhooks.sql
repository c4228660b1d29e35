-- Webhooks both ways, on the Standard Webhooks convention (lib/webhooks/).
--
-- Inbound: a webhook source is a row. Its secrets are never stored: the row names the environment variables that
-- hold them (`whsec_...`), one or more so a secret can be rotated without downtime. A delivery that verifies
-- becomes a task through create_task with the idempotency key `webhook:<source>:<webhook-id>`, so the same delivery
-- 100 times (sequential or concurrent) makes one task; the unique index on tasks decides the race. A refused
-- delivery records nothing but a counter per (source, reason).
--
-- Outbound: every webhook Nightshift sends (task callbacks, peer hops) is a delivery row with a stable
-- `webhook-id`; each attempt is its own row, so the task page shows every try.

create table public.webhook_sources (
  name              text primary key check (name ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
  agent_id          text not null references public.agents(id),
  description       text not null default '',
  -- The prompt; `{{payload.path}}` placeholders are filled from the delivery's JSON payload.
  prompt_template   text not null check (length(prompt_template) between 1 and 20000),
  -- { "<input field>": "<dotted path in the payload>" }: the task's input. A missing path is a 422 naming it.
  input_mapping     jsonb not null default '{}'::jsonb check (jsonb_typeof(input_mapping) = 'object'),
  mode              public.task_mode not null default 'now',
  require_approval  boolean not null default false,
  callback_url      text,
  -- Names of environment variables holding the `whsec_` secrets; any of them verifies (rotation).
  secret_env_names  text[] not null check (cardinality(secret_env_names) between 1 and 5),
  enabled           boolean not null default true,
  created_at        timestamptz not null default now(),
  updated_at        timestamptz not null default now()
);

alter table public.webhook_sources add constraint webhook_sources_secret_env_names_format
  check (array_to_string(secret_env_names, ',') ~ '^[A-Z][A-Z0-9_]{2,63}(,[A-Z][A-Z0-9_]{2,63})*$');

create trigger webhook_sources_touch before update on public.webhook_sources
  for each row execute function public.touch_updated_at();

-- Refused deliveries: counted, nothing else kept. `source` is free text (an unknown source counts under '*').
create table public.webhook_refusals (
  source      text not null check (length(source) between 1 and 63),
  reason      text not null check (reason in ('unknown_source', 'disabled', 'bad_signature', 'stale_timestamp',
                                                'missing_headers', 'too_large', 'unprocessable', 'invalid_json')),
  count       bigint not null default 0,
  last_at     timestamptz not null default now(),
  primary key (source, reason)
);

create table public.webhook_deliveries (
  id               uuid primary key default gen_random_uuid(),
  -- The Standard Webhooks `webhook-id`: stable across attempts, receivers deduplicate on it.
  message_id       text not null unique check (length(message_id) between 1 and 255),
  task_id          uuid references public.tasks(id) on delete cascade,
  kind             text not null check (kind in ('callback', 'peer')),
  event_type       text not null,
  url              text not null,
  -- The exact body every attempt sends (the signature covers it; only the timestamp is fresh per attempt).
  payload          text not null check (octet_length(payload) <= 1048576),
  status           text not null default 'pending' check (status in ('pending', 'delivered', 'failed')),
  attempts         integer not null default 0,
  last_status_code integer,
  last_error       text,
  created_at       timestamptz not null default now(),
  updated_at       timestamptz not null default now(),
  finished_at      timestamptz
);
create index webhook_deliveries_task on public.webhook_deliveries (task_id, created_at);

create table public.webhook_delivery_attempts (
  delivery_id  uuid not null references public.webhook_deliveries(id) on delete cascade,
  attempt      integer not null check (attempt >= 1),
  outcome      text not null check (outcome in ('delivered', 'retry', 'final')),
  status_code  integer,
  error        text,
  duration_ms  integer not null default 0,
  at           timestamptz not null default now(),
  primary key (delivery_id, attempt)
);

alter table public.webhook_sources enable row level security;
alter table public.webhook_refusals enable row level security;
alter table public.webhook_deliveries enable row level security;
alter table public.webhook_delivery_attempts enable row level security;

create trigger webhook_deliveries_touch before update on public.webhook_deliveries
  for each row execute function public.touch_updated_at();

-- Counts one refused delivery.
create function public.note_webhook_refusal(p_source text, p_reason text)
returns void language sql set search_path = '' as $$
  insert into public.webhook_refusals as r (source, reason, count, last_at)
  values (p_source, p_reason, 1, now())
  on conflict (source, reason) do update set count = r.count + 1, last_at = now();
$$;

-- Opens (or finds) the delivery with this message id. Returns the row: a retried step gets the same delivery.
create function public.open_webhook_delivery(
  p_message_id text, p_task_id uuid, p_kind text, p_event_type text, p_url text, p_payload text
) returns setof public.webhook_deliveries
language plpgsql set search_path = '' as $$
begin
  insert into public.webhook_deliveries (message_id, task_id, kind, event_type, url, payload)
  values (p_message_id, p_task_id, p_kind, p_event_type, p_url, p_payload)
  on conflict (message_id) do nothing;
  return query select * from public.webhook_deliveries d where d.message_id = p_message_id;
end $$;

-- Records one attempt and moves the delivery with it, in one statement. An attempt number already recorded
-- (a retried step) changes nothing; a finished delivery stays finished.
create function public.record_webhook_attempt(
  p_delivery_id uuid, p_attempt integer, p_outcome text, p_status_code integer, p_error text, p_duration_ms integer
) returns setof public.webhook_deliveries
language sql set search_path = '' as $$
  with ins as (
    insert into public.webhook_delivery_attempts (delivery_id, attempt, outcome, status_code, error, duration_ms)
    values (p_delivery_id, p_attempt, p_outcome, p_status_code, left(p_error, 1000), greatest(p_duration_ms, 0))
    on conflict (delivery_id, attempt) do nothing
    returning delivery_id
  )
  update public.webhook_deliveries d
     set attempts = greatest(d.attempts, p_attempt),
         last_status_code = p_status_code,
         last_error = left(p_error, 1000),
         status = case p_outcome when 'delivered' then 'delivered' when 'final' then 'failed' else 'pending' end,
         finished_at = case when p_outcome in ('delivered', 'final') then now() else null end
    from ins
   where d.id = ins.delivery_id and d.status = 'pending'
  returning d.*;
$$;

revoke execute on all functions in schema public from public, anon, authenticated;
grant execute on all functions in schema public to service_role;
