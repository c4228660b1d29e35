-- Token-weighted pacing under Claude's rate limits, shared by every instance (issue 13).
--
-- Anthropic limits each model by requests, input tokens and output tokens per minute, each a token bucket that
-- refills continuously (capacity = the per-minute limit). Output tokens are charged at max_tokens when a request
-- starts and corrected when it ends. rate_limits mirrors those buckets in Postgres, one row per model, so every
-- process takes from the same bucket under the row's lock before it calls the model:
--   take_rate_limit      before a call: take (1 request, input tokens, max_tokens) or learn when they will be there
--   settle_rate_limit    after an answer: give back what the call did not use, calibrate from anthropic-ratelimit-*
--   note_rate_limited    a 429 came back anyway: block the model until retry-after (bounded by the caller), and
--                        believe the provider's remaining figures
-- Limits are per model, configured by the operator (update rate_limits) and calibrated from the response headers.
-- A model with no limits known is not paced.
--
-- Priority decides who goes first when tokens are short: a call that must wait leaves a ticket; a later call goes
-- first only if the bucket covers the tickets ahead of it (higher priority, or same priority and older) plus its own
-- demand. A ticket expires shortly after its expected time, so a run that died does not block the model.
--
-- The task's status follows: a call that must wait marks its task waiting_rate_limit with the model and the
-- expected time in status_reason; a call that gets through marks it running again.

alter type public.task_status add value if not exists 'waiting_rate_limit' after 'waiting_budget';

create table public.rate_limits (
  model                    text primary key check (length(model) between 1 and 200),
  requests_per_minute      integer check (requests_per_minute > 0),
  input_tokens_per_minute  integer check (input_tokens_per_minute > 0),
  output_tokens_per_minute integer check (output_tokens_per_minute > 0),
  -- What the buckets hold now (as of refreshed_at); refilled lazily by each call.
  requests_available       double precision not null default 0,
  input_available          double precision not null default 0,
  output_available         double precision not null default 0,
  refreshed_at             timestamptz,
  -- A 429's retry-after: nothing is admitted before it.
  blocked_until            timestamptz,
  -- 'config' (operator) or 'headers' (calibrated from an answer).
  source                   text not null default 'config' check (source in ('config', 'headers')),
  calibrated_at            timestamptz,
  admitted                 bigint not null default 0,
  deferred                 bigint not null default 0,
  rate_limited             bigint not null default 0,
  updated_at               timestamptz not null default now()
) with (fillfactor = 50);

create table public.rate_limit_waiters (
  model          text not null,
  ticket         text not null check (length(ticket) between 1 and 300),
  priority       smallint not null default 0,
  enqueued_at    timestamptz not null,
  input_tokens   integer not null check (input_tokens >= 0),
  output_tokens  integer not null check (output_tokens >= 0),
  expected_at    timestamptz not null,
  expires_at     timestamptz not null,
  primary key (model, ticket)
);
create index rate_limit_waiters_order on public.rate_limit_waiters (model, priority desc, enqueued_at);

alter table public.rate_limits enable row level security;
alter table public.rate_limit_waiters enable row level security;

-- Refills a bucket row to p_now (continuous refill at limit/60 per second, capped at the limit). Internal.
create function public.rate_limit_refill(p_row public.rate_limits, p_now timestamptz)
returns public.rate_limits
language plpgsql immutable set search_path = '' as $$
declare
  v_secs double precision;
begin
  if p_row.refreshed_at is null then
    -- A new or newly configured model starts with full buckets.
    p_row.requests_available := coalesce(p_row.requests_per_minute, 0);
    p_row.input_available := coalesce(p_row.input_tokens_per_minute, 0);
    p_row.output_available := coalesce(p_row.output_tokens_per_minute, 0);
    p_row.refreshed_at := p_now;
    return p_row;
  end if;
  v_secs := greatest(extract(epoch from (p_now - p_row.refreshed_at)), 0);
  if p_row.requests_per_minute is not null then
    p_row.requests_available := least(p_row.requests_per_minute, p_row.requests_available + p_row.requests_per_minute * v_secs / 60);
  end if;
  if p_row.input_tokens_per_minute is not null then
    p_row.input_available := least(p_row.input_tokens_per_minute, p_row.input_available + p_row.input_tokens_per_minute * v_secs / 60);
  end if;
  if p_row.output_tokens_per_minute is not null then
    p_row.output_available := least(p_row.output_tokens_per_minute, p_row.output_available + p_row.output_tokens_per_minute * v_secs / 60);
  end if;
  p_row.refreshed_at := greatest(p_row.refreshed_at, p_now);
  return p_row;
end $$;

-- Takes one call's tokens from the model's buckets, or says when they will be there.
-- ok: admitted (the tokens are taken). Otherwise wait_until is when to try again and `dimension` names the limit
-- that binds (requests | input_tokens | output_tokens | retry_after | queue).
create function public.take_rate_limit(
  p_model text,
  p_ticket text,
  p_priority integer,
  p_input_tokens integer,
  p_output_tokens integer,
  p_task_id uuid default null,
  p_now timestamptz default now()
) returns table (ok boolean, wait_until timestamptz, dimension text, input_taken integer, output_taken integer)
language plpgsql set search_path = '' as $$
declare
  v_now  timestamptz := coalesce(p_now, now());
  v      public.rate_limits;
  v_enq  timestamptz;
  v_pri  integer := coalesce(p_priority, 0);
  v_in   double precision;
  v_out  double precision;
  a_req  double precision := 0;
  a_in   double precision := 0;
  a_out  double precision := 0;
  v_wait double precision := 0;
  v_dim  text;
  v_w    double precision;
  v_until timestamptz;
begin
  if p_model is null or p_ticket is null or coalesce(p_input_tokens, -1) < 0 or coalesce(p_output_tokens, -1) < 0 then
    raise exception 'take_rate_limit: model, ticket and token counts >= 0 are required' using errcode = '22023';
  end if;

  select * into v from public.rate_limits r where r.model = p_model for update;
  if not found then
    insert into public.rate_limits (model) values (p_model) on conflict (model) do nothing;
    select * into v from public.rate_limits r where r.model = p_model for update;
  end if;

  if v.requests_per_minute is null and v.input_tokens_per_minute is null and v.output_tokens_per_minute is null
     and (v.blocked_until is null or v.blocked_until <= v_now) then
    update public.rate_limits r set admitted = r.admitted + 1 where r.model = p_model;
    return query select true, null::timestamptz, null::text, p_input_tokens, p_output_tokens;
    return;
  end if;

  v := public.rate_limit_refill(v, v_now);
  -- A call larger than a whole minute's limit still runs, when the bucket is full.
  v_in := least(p_input_tokens, coalesce(v.input_tokens_per_minute, p_input_tokens));
  v_out := least(p_output_tokens, coalesce(v.output_tokens_per_minute, p_output_tokens));

  delete from public.rate_limit_waiters w where w.model = p_model and w.expires_at < v_now - interval '10 minutes';
  select w.enqueued_at into v_enq from public.rate_limit_waiters w where w.model = p_model and w.ticket = p_ticket;
  v_enq := coalesce(v_enq, v_now);
  select coalesce(count(*), 0), coalesce(sum(w.input_tokens), 0), coalesce(sum(w.output_tokens), 0)
    into a_req, a_in, a_out
    from public.rate_limit_waiters w
   where w.model = p_model and w.ticket <> p_ticket and w.expires_at > v_now
     and (w.priority > v_pri or (w.priority = v_pri and (w.enqueued_at, w.ticket) < (v_enq, p_ticket)));

  if v.blocked_until is not null and v.blocked_until > v_now then
    v_until := v.blocked_until;
    v_dim := 'retry_after';
  elsif (v.requests_per_minute is null or v.requests_available >= a_req + 1)
     and (v.input_tokens_per_minute is null or v.input_available >= a_in + v_in)
     and (v.output_tokens_per_minute is null or v.output_available >= a_out + v_out) then
    update public.rate_limits r
       set requests_available = case when v.requests_per_minute is null then 0 else v.requests_available - 1 end,
           input_available = case when v.input_tokens_per_minute is null then 0 else v.input_available - v_in end,
           output_available = case when v.output_tokens_per_minute is null then 0 else v.output_available - v_out end,
           refreshed_at = v.refreshed_at,
           admitted = r.admitted + 1,
           updated_at = v_now
     where r.model = p_model;
    delete from public.rate_limit_waiters w where w.model = p_model and w.ticket = p_ticket;
    if p_task_id is not null then
      update public.tasks t set status = 'running', status_reason = null
       where t.id = p_task_id and t.status::text = 'waiting_rate_limit';
    end if;
    return query select true, null::timestamptz, null::text, v_in::integer, v_out::integer;
    return;
  else
    -- How long until the bucket covers the tickets ahead plus this call, per limit; the longest binds.
    if v.requests_per_minute is not null and v.requests_available < a_req + 1 then
      v_w := (a_req + 1 - v.requests_available) * 60.0 / v.requests_per_minute;
      if v_w > v_wait then v_wait := v_w; v_dim := 'requests'; end if;
    end if;
    if v.input_tokens_per_minute is not null and v.input_available < a_in + v_in then
      v_w := (a_in + v_in - v.input_available) * 60.0 / v.input_tokens_per_minute;
      if v_w > v_wait then v_wait := v_w; v_dim := 'input_tokens'; end if;
    end if;
    if v.output_tokens_per_minute is not null and v.output_available < a_out + v_out then
      v_w := (a_out + v_out - v.output_available) * 60.0 / v.output_tokens_per_minute;
      if v_w > v_wait then v_wait := v_w; v_dim := 'output_tokens'; end if;
    end if;
    -- Never more than a minute: the whole bucket refills in one (tickets ahead are waiting too, and re-queue).
    v_until := v_now + make_interval(secs => least(greatest(v_wait, 0.05), 60));
  end if;

  update public.rate_limits r
     set requests_available = v.requests_available, input_available = v.input_available,
         output_available = v.output_available, refreshed_at = v.refreshed_at,
         deferred = r.deferred + 1, updated_at = v_now
   where r.model = p_model;
  insert into public.rate_limit_waiters as w (model, ticket, priority, enqueued_at, input_tokens, output_tokens, expected_at, expires_at)
  values (p_model, p_ticket, v_pri, v_enq, v_in::integer, v_out::integer, v_until, v_until + interval '2 minutes')
  on conflict (model, ticket) do update
     set priority = excluded.priority, input_tokens = excluded.input_tokens, output_tokens = excluded.output_tokens,
         expected_at = excluded.expected_at, expires_at = excluded.expires_at;
  if p_task_id is not null then
    update public.tasks t
       set status = 'waiting_rate_limit',
           status_reason = format('waiting for the %s rate limit (%s) of %s; expected to run at %s', p_model,
             replace(v_dim, '_', ' '),
             case v_dim when 'requests' then v.requests_per_minute || ' requests/min'
                        when 'input_tokens' then v.input_tokens_per_minute || ' input tokens/min'
                        when 'output_tokens' then v.output_tokens_per_minute || ' output tokens/min'
                        when 'retry_after' then 'the provider''s retry-after'
                        else 'the queue' end,
             to_char(v_until at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'))
     where t.id = p_task_id and t.status in ('running', 'queued');
  end if;
  return query select false, v_until, v_dim, 0, 0;
end $$;

-- After an answer: give back what the call was charged beyond its real use (input estimate − input billed,
-- max_tokens − output), then calibrate from the answer's anthropic-ratelimit-* headers: their limits become the
-- model's limits, and the provider's remaining figures cap ours (the provider also counts other clients of the key).
-- Header arguments are null when the answer had none.
create function public.settle_rate_limit(
  p_model text,
  p_refund_input integer,
  p_refund_output integer,
  p_requests_limit integer default null,
  p_requests_remaining integer default null,
  p_input_limit integer default null,
  p_input_remaining integer default null,
  p_output_limit integer default null,
  p_output_remaining integer default null,
  p_now timestamptz default now()
) returns void
language plpgsql set search_path = '' as $$
declare
  v     public.rate_limits;
  v_now timestamptz := coalesce(p_now, now());
  v_cal boolean := coalesce(p_requests_limit, p_input_limit, p_output_limit) is not null;
begin
  select * into v from public.rate_limits r where r.model = p_model for update;
  if not found then
    if not v_cal then return; end if;
    insert into public.rate_limits (model) values (p_model) on conflict (model) do nothing;
    select * into v from public.rate_limits r where r.model = p_model for update;
  end if;
  v := public.rate_limit_refill(v, v_now);
  if v_cal then
    v.requests_per_minute := coalesce(p_requests_limit, v.requests_per_minute);
    v.input_tokens_per_minute := coalesce(p_input_limit, v.input_tokens_per_minute);
    v.output_tokens_per_minute := coalesce(p_output_limit, v.output_tokens_per_minute);
  end if;
  v.input_available := v.input_available + greatest(coalesce(p_refund_input, 0), 0);
  v.output_available := v.output_available + greatest(coalesce(p_refund_output, 0), 0);
  v.requests_available := least(v.requests_available, coalesce(p_requests_remaining, v.requests_available), coalesce(v.requests_per_minute, 0));
  v.input_available := least(v.input_available, coalesce(p_input_remaining, v.input_available), coalesce(v.input_tokens_per_minute, 0));
  v.output_available := least(v.output_available, coalesce(p_output_remaining, v.output_available), coalesce(v.output_tokens_per_minute, 0));
  update public.rate_limits r
     set requests_per_minute = v.requests_per_minute, input_tokens_per_minute = v.input_tokens_per_minute,
         output_tokens_per_minute = v.output_tokens_per_minute,
         requests_available = v.requests_available, input_available = v.input_available,
         output_available = v.output_available, refreshed_at = v.refreshed_at,
         source = case when v_cal then 'headers' else r.source end,
         calibrated_at = case when v_cal then v_now else r.calibrated_at end,
         updated_at = v_now
   where r.model = p_model;
end $$;

-- A 429 came back: nothing is admitted for the model before now + p_retry_after_seconds (the caller bounds it), the
-- provider's remaining figures replace ours, and the task waits visibly (waiting_rate_limit, with the model and
-- the time). Returns when to try again.
create function public.note_rate_limited(
  p_model text,
  p_retry_after_seconds double precision,
  p_task_id uuid default null,
  p_requests_limit integer default null,
  p_requests_remaining integer default null,
  p_input_limit integer default null,
  p_input_remaining integer default null,
  p_output_limit integer default null,
  p_output_remaining integer default null,
  p_now timestamptz default now()
) returns timestamptz
language plpgsql set search_path = '' as $$
declare
  v       public.rate_limits;
  v_now   timestamptz := coalesce(p_now, now());
  v_until timestamptz := v_now + make_interval(secs => greatest(coalesce(p_retry_after_seconds, 1), 0));
begin
  insert into public.rate_limits (model) values (p_model) on conflict (model) do nothing;
  select * into v from public.rate_limits r where r.model = p_model for update;
  v := public.rate_limit_refill(v, v_now);
  update public.rate_limits r
     set requests_per_minute = coalesce(p_requests_limit, r.requests_per_minute),
         input_tokens_per_minute = coalesce(p_input_limit, r.input_tokens_per_minute),
         output_tokens_per_minute = coalesce(p_output_limit, r.output_tokens_per_minute),
         requests_available = coalesce(p_requests_remaining, v.requests_available),
         input_available = coalesce(p_input_remaining, v.input_available),
         output_available = coalesce(p_output_remaining, v.output_available),
         refreshed_at = v.refreshed_at,
         blocked_until = greatest(coalesce(r.blocked_until, v_until), v_until),
         rate_limited = r.rate_limited + 1,
         updated_at = v_now
   where r.model = p_model;
  if p_task_id is not null then
    update public.tasks t
       set status = 'waiting_rate_limit',
           status_reason = format('rate limited by the provider (429) on %s; retrying at %s', p_model,
             to_char(v_until at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'))
     where t.id = p_task_id and t.status in ('running', 'queued');
  end if;
  return v_until;
end $$;

-- Gives a taken call's tokens back untouched (the call was not sent: its budget was refused).
create function public.return_rate_limit(p_model text, p_input integer, p_output integer, p_now timestamptz default now())
returns void
language sql set search_path = '' as $$
  select public.settle_rate_limit(p_model, p_input, p_output, p_now => p_now);
  update public.rate_limits r
     set requests_available = least(r.requests_available + 1, coalesce(r.requests_per_minute, 0))
   where r.model = p_model and r.requests_per_minute is not null;
$$;

-- A task waiting for the rate limit is running again once its retry starts (start_task predates this status).
create function public.resume_rate_limited_task(p_task_id uuid)
returns boolean
language plpgsql set search_path = '' as $$
begin
  update public.tasks t set status = 'running', status_reason = null
   where t.id = p_task_id and t.status = 'waiting_rate_limit';
  return found;
end $$;

revoke execute on all functions in schema public from public, anon, authenticated;
grant execute on all functions in schema public to service_role;
