-- Notification delivery: every notification (approval requested, work finished or failed, report ready, budget
-- exhausted) goes out through each configured channel — a Slack incoming webhook, a Telegram bot, email through
-- Resend — at most once per (notification, channel), and a channel that fails never fails anything else.
--
-- The notifications table comes from the budgets migration (its unique dedupe_key makes "tell once" a unique-index
-- decision). This migration adds:
--   notifications.link            where the message points (a path on NIGHTSHIFT_PUBLIC_URL, or an absolute URL)
--   notification_deliveries       one row per (notification, channel): the per-channel ledger
--   record_notification           insert ... on conflict (dedupe_key) do nothing, telling whether it is new
--   begin_notification_delivery   counts a delivery round and returns the notification
--   claim_notification_delivery   compare-and-set claim of one channel, so a retried step never sends twice once
--                                 the channel is recorded as sent
--   complete_/fail_notification_delivery   record the outcome of one send
--   finish_notification           concludes the notification: delivered_at when a channel succeeded, last_error
--                                 when none did (or no channel is configured)
--   sweep_notifications           claims notifications whose delivery never concluded, for the sweeper to re-announce
--
-- A notification is *concluded* when delivered_at or last_error is set; the sweeper leaves concluded ones alone.
-- The application (lib/notifications) only composes these calls.
--
-- Error codes: 22023 invalid argument; NSN01 unknown notification.

alter table public.notifications
  add column link text check (link is null or (length(link) <= 2000 and link ~ '^(/|https?://)'));

-- Life of a delivery row:
--   (none) --claim--> sending --complete--> sent                  (final: never sent again)
--                     sending --fail(retry)--> retrying --claim--> sending ...
--                     sending --fail--> failed                    (a later delivery round may claim it again)
--                     sending, lease expired --claim--> sending   (the claimer crashed; see claim below)
create table public.notification_deliveries (
  id               bigint generated always as identity primary key,
  notification_id  uuid not null references public.notifications(id) on delete cascade,
  channel          text not null check (channel in ('slack', 'telegram', 'email')),
  status           text not null check (status in ('sending', 'retrying', 'sent', 'failed')),
  attempts         integer not null default 0 check (attempts >= 0),
  -- The current claim: whoever holds this token sends until lease_expires_at.
  claim_token      uuid,
  claimed_at       timestamptz,
  lease_expires_at timestamptz,
  sent_at          timestamptz,
  failed_at        timestamptz,
  -- What the provider answered: Telegram's message_id, Resend's email id (Slack's webhooks return none).
  provider_id      text check (length(provider_id) <= 200),
  response_status  integer,
  -- Always redacted by the application (no token, key or webhook secret ever reaches this column).
  last_error       text check (length(last_error) <= 2000),
  created_at       timestamptz not null default now(),
  updated_at       timestamptz not null default now(),
  unique (notification_id, channel),
  check ((status = 'sending') = (lease_expires_at is not null)),
  check ((status = 'sent') = (sent_at is not null)),
  check ((status = 'failed') = (failed_at is not null))
);

alter table public.notification_deliveries enable row level security;

create trigger notification_deliveries_touch before update on public.notification_deliveries
  for each row execute function public.touch_updated_at();

-- Records a notification once per dedupe key. A repeat inserts nothing and returns the first one (its content is
-- kept: the first writer of a key wins). An unknown agent or task is not an error — a notification must never fail
-- its caller over a reference — it is stored without it.
create function public.record_notification(
  p_kind text,
  p_dedupe_key text,
  p_title text,
  p_body text,
  p_agent_id text default null,
  p_task_id uuid default null,
  p_link text default null,
  p_payload jsonb default null,
  p_now timestamptz default now()
) returns table (notification_id uuid, created boolean, delivered_at timestamptz, last_error text)
language plpgsql as $$
#variable_conflict use_column
declare
  v_id uuid;
begin
  if p_kind is null or p_dedupe_key is null or p_title is null or p_body is null then
    raise exception 'record_notification: kind, dedupe key, title and body are required' using errcode = '22023';
  end if;

  insert into public.notifications (kind, dedupe_key, agent_id, task_id, title, body, link, payload, created_at)
  values (
    p_kind, p_dedupe_key,
    (select a.id from public.agents a where a.id = p_agent_id),
    (select t.id from public.tasks t where t.id = p_task_id),
    p_title, p_body, p_link, coalesce(p_payload, '{}'::jsonb), coalesce(p_now, now())
  )
  on conflict (dedupe_key) do nothing
  returning id into v_id;

  if v_id is not null then
    return query select v_id, true, null::timestamptz, null::text;
    return;
  end if;
  -- ON CONFLICT waited for a concurrent inserter of the same key to commit, so a new statement sees its row.
  return query select n.id, false, n.delivered_at, n.last_error from public.notifications n where n.dedupe_key = p_dedupe_key;
end $$;

-- Starts a delivery round: counts it in notifications.attempts and returns what the channels need.
-- No row when the notification does not exist (deleted, or an event some other app made up).
create function public.begin_notification_delivery(p_notification_id uuid)
returns table (
  id uuid, kind text, dedupe_key text, title text, body text, link text, agent_id text, task_id uuid,
  created_at timestamptz, delivered_at timestamptz, last_error text, attempts integer
)
language sql as $$
  update public.notifications n set attempts = n.attempts + 1
   where n.id = p_notification_id
  returning n.id, n.kind, n.dedupe_key, n.title, n.body, n.link, n.agent_id, n.task_id, n.created_at, n.delivered_at,
            n.last_error, n.attempts
$$;

-- Claims the right to send a notification through one channel. One statement decides every race: INSERT ... ON
-- CONFLICT DO UPDATE locks the existing row and re-checks its WHERE against the latest committed version, so of any
-- number of concurrent claimers exactly one gets the claim.
--
-- outcome:
--   'claimed'      send now, then complete_notification_delivery (or fail_notification_delivery) with the token;
--   'sent'         it went out already: never send it again;
--   'in_progress'  someone holds a live claim (another delivery round of the same notification).
--
-- A 'sending' row whose lease expired is claimed again: its claimer crashed, and nobody can tell whether that was
-- before or after the provider accepted the message. Re-claiming risks a second message in exactly that window
-- (email is covered: Resend deduplicates by the Idempotency-Key notification/<id>/email); never re-claiming would
-- lose the message. The lease must exceed the longest send (the HTTP timeout).
create function public.claim_notification_delivery(
  p_notification_id uuid,
  p_channel text,
  p_lease_seconds integer default 60,
  p_now timestamptz default now()
) returns table (outcome text, claim_token uuid, attempts integer, lease_expires_at timestamptz, provider_id text)
language plpgsql as $$
#variable_conflict use_column
declare
  v_now timestamptz := coalesce(p_now, now());
  v_row public.notification_deliveries;
begin
  if p_notification_id is null or p_channel is null then
    raise exception 'claim_notification_delivery: notification and channel are required' using errcode = '22023';
  end if;
  if p_lease_seconds is null or p_lease_seconds < 1 or p_lease_seconds > 3600 then
    raise exception 'claim_notification_delivery: lease must be 1..3600 seconds, got %', p_lease_seconds
      using errcode = '22023';
  end if;
  if not exists (select 1 from public.notifications n where n.id = p_notification_id) then
    raise exception 'claim_notification_delivery: unknown notification %', p_notification_id using errcode = 'NSN01';
  end if;

  insert into public.notification_deliveries as d (notification_id, channel, status, attempts, claim_token, claimed_at,
                                                   lease_expires_at)
  values (p_notification_id, p_channel, 'sending', 1, gen_random_uuid(), v_now,
          v_now + make_interval(secs => p_lease_seconds))
  on conflict (notification_id, channel) do update
     set status = 'sending',
         attempts = d.attempts + 1,
         claim_token = gen_random_uuid(),
         claimed_at = v_now,
         lease_expires_at = v_now + make_interval(secs => p_lease_seconds),
         failed_at = null
   where d.status in ('retrying', 'failed') or (d.status = 'sending' and d.lease_expires_at <= v_now)
  returning * into v_row;

  if found then
    return query select 'claimed'::text, v_row.claim_token, v_row.attempts, v_row.lease_expires_at, null::text;
    return;
  end if;

  select * into v_row from public.notification_deliveries d
   where d.notification_id = p_notification_id and d.channel = p_channel;
  return query select case when v_row.status = 'sent' then 'sent' else 'in_progress' end,
    null::uuid, v_row.attempts, v_row.lease_expires_at, v_row.provider_id;
end $$;

-- Records that the message went out. Accepted whatever the claim token (if it was sent, the ledger must say so);
-- the first completion wins. Returns true when this call recorded it.
create function public.complete_notification_delivery(
  p_notification_id uuid,
  p_channel text,
  p_provider_id text default null,
  p_response_status integer default null,
  p_now timestamptz default now()
) returns boolean
language plpgsql as $$
begin
  update public.notification_deliveries d
     set status = 'sent', sent_at = coalesce(p_now, now()), lease_expires_at = null, failed_at = null,
         provider_id = left(p_provider_id, 200), response_status = p_response_status, last_error = null
   where d.notification_id = p_notification_id and d.channel = p_channel and d.status <> 'sent';
  return found;
end $$;

-- Records a failed send. With p_retry the claim is released for the step's retry ('retrying'); without, the channel
-- is 'failed' for this round. With a claim token, only the current claim holder may record (a stale claimer cannot
-- undo someone else's claim); without one (a failure outside any claim: a misconfigured channel, a step that failed
-- for good before it could record), any row that is not sent and not claimed by a live lease is marked failed, and a
-- missing row is created. Never touches a sent row. Returns true when something was recorded.
create function public.fail_notification_delivery(
  p_notification_id uuid,
  p_channel text,
  p_error text,
  p_claim_token uuid default null,
  p_retry boolean default false,
  p_response_status integer default null,
  p_now timestamptz default now()
) returns boolean
language plpgsql as $$
declare
  v_now   timestamptz := coalesce(p_now, now());
  v_error text := left(coalesce(p_error, 'unknown error'), 2000);
begin
  if p_notification_id is null or p_channel is null then
    raise exception 'fail_notification_delivery: notification and channel are required' using errcode = '22023';
  end if;
  if p_claim_token is not null then
    update public.notification_deliveries d
       set status = case when p_retry then 'retrying' else 'failed' end,
           failed_at = case when p_retry then null else v_now end,
           lease_expires_at = null, last_error = v_error, response_status = p_response_status
     where d.notification_id = p_notification_id and d.channel = p_channel and d.status = 'sending'
       and d.claim_token = p_claim_token;
    return found;
  end if;

  insert into public.notification_deliveries as d (notification_id, channel, status, failed_at, last_error,
                                                   response_status)
  values (p_notification_id, p_channel, 'failed', v_now, v_error, p_response_status)
  on conflict (notification_id, channel) do update
     set status = 'failed', failed_at = v_now, lease_expires_at = null, last_error = v_error,
         response_status = coalesce(p_response_status, d.response_status)
   where d.status <> 'sent' and not (d.status = 'sending' and d.lease_expires_at > v_now);
  return found;
end $$;

-- Concludes a delivery round from the delivery rows:
--   any channel sent              delivered_at (the first send), last_error cleared
--   none sent, every row final    last_error = each channel's error
--   something still in flight     nothing changes (the round that holds it concludes)
-- With p_reason (e.g. 'no channel configured') the notification concludes undelivered with that reason, unless it
-- was delivered before.
create function public.finish_notification(
  p_notification_id uuid,
  p_reason text default null,
  p_now timestamptz default now()
) returns table (concluded boolean, delivered_at timestamptz, last_error text, sent integer, failed integer,
                 in_flight integer)
language plpgsql as $$
#variable_conflict use_column
declare
  v_sent      integer;
  v_failed    integer;
  v_in_flight integer;
  v_first     timestamptz;
  v_errors    text;
  v_row       public.notifications;
begin
  if p_notification_id is null then
    raise exception 'finish_notification: the notification is required' using errcode = '22023';
  end if;
  -- Lock the notification first, so two rounds concluding at once see each other's rows.
  select * into v_row from public.notifications n where n.id = p_notification_id for update;
  if not found then
    raise exception 'finish_notification: unknown notification %', p_notification_id using errcode = 'NSN01';
  end if;

  select count(*) filter (where d.status = 'sent'),
         count(*) filter (where d.status = 'failed'),
         count(*) filter (where d.status in ('sending', 'retrying')),
         min(d.sent_at),
         string_agg(d.channel || ': ' || coalesce(d.last_error, 'failed'), '; ' order by d.channel)
           filter (where d.status = 'failed')
    into v_sent, v_failed, v_in_flight, v_first, v_errors
    from public.notification_deliveries d where d.notification_id = p_notification_id;

  if v_sent > 0 then
    update public.notifications n
       set delivered_at = coalesce(n.delivered_at, v_first), last_error = null, next_attempt_at = null
     where n.id = p_notification_id
    returning * into v_row;
  elsif p_reason is not null and v_row.delivered_at is null then
    update public.notifications n set last_error = left(p_reason, 2000), next_attempt_at = null
     where n.id = p_notification_id
    returning * into v_row;
  elsif v_in_flight = 0 and v_failed > 0 and v_row.delivered_at is null then
    update public.notifications n set last_error = left(v_errors, 2000), next_attempt_at = null
     where n.id = p_notification_id
    returning * into v_row;
  end if;

  return query select (v_row.delivered_at is not null or v_row.last_error is not null), v_row.delivered_at,
    v_row.last_error, v_sent, v_failed, v_in_flight;
end $$;

-- Claims up to p_limit notifications whose delivery never concluded — the event was never sent (the event API was
-- down), or the round died — created between p_max_age and p_min_age ago and not swept in the last p_retry_seconds.
-- Each is pushed p_retry_seconds into the future (next_attempt_at) so concurrent sweepers and the next sweep skip
-- it. Re-announcing is safe: the per-channel ledger never sends a channel twice.
create function public.sweep_notifications(
  p_min_age_seconds integer default 900,
  p_max_age_seconds integer default 172800,
  p_limit integer default 100,
  p_retry_seconds integer default 900,
  p_now timestamptz default now()
) returns table (notification_id uuid, dedupe_key text, next_attempt_at timestamptz)
language plpgsql as $$
#variable_conflict use_column
declare
  v_now timestamptz := coalesce(p_now, now());
begin
  if coalesce(p_min_age_seconds, -1) < 0 or coalesce(p_max_age_seconds, -1) < coalesce(p_min_age_seconds, 0)
     or coalesce(p_limit, 0) not between 1 and 1000 or coalesce(p_retry_seconds, 0) < 1 then
    raise exception 'sweep_notifications: need 0 <= min age <= max age, limit 1..1000, retry >= 1 s'
      using errcode = '22023';
  end if;
  return query
  with due as (
    select n.id from public.notifications n
     where n.delivered_at is null and n.last_error is null
       and n.created_at <= v_now - make_interval(secs => p_min_age_seconds)
       and n.created_at > v_now - make_interval(secs => p_max_age_seconds)
       and (n.next_attempt_at is null or n.next_attempt_at <= v_now)
     order by n.created_at
     limit p_limit
     for update skip locked
  )
  update public.notifications n set next_attempt_at = v_now + make_interval(secs => p_retry_seconds)
    from due where n.id = due.id
  returning n.id, n.dedupe_key, n.next_attempt_at;
end $$;

-- As in the foundation: functions are executable by PUBLIC by default, which PostgREST would expose to anon.
-- Only the server may call them.
revoke execute on function
  public.record_notification(text, text, text, text, text, uuid, text, jsonb, timestamptz),
  public.begin_notification_delivery(uuid),
  public.claim_notification_delivery(uuid, text, integer, timestamptz),
  public.complete_notification_delivery(uuid, text, text, integer, timestamptz),
  public.fail_notification_delivery(uuid, text, text, uuid, boolean, integer, timestamptz),
  public.finish_notification(uuid, text, timestamptz),
  public.sweep_notifications(integer, integer, integer, integer, timestamptz)
  from public, anon, authenticated;
grant execute on function
  public.record_notification(text, text, text, text, text, uuid, text, jsonb, timestamptz),
  public.begin_notification_delivery(uuid),
  public.claim_notification_delivery(uuid, text, integer, timestamptz),
  public.complete_notification_delivery(uuid, text, text, integer, timestamptz),
  public.fail_notification_delivery(uuid, text, text, uuid, boolean, integer, timestamptz),
  public.finish_notification(uuid, text, timestamptz),
  public.sweep_notifications(integer, integer, integer, integer, timestamptz)
  to service_role;
