-- Pacing (issue 13, makespan): the provider's remaining figures are applied as of when the answer was read, and the
-- limiter counts where its time goes.
--
-- settle_rate_limit caps each bucket by the answer's anthropic-ratelimit-*-remaining figure (the provider also counts
-- other clients of the key). That figure is the provider's bucket at the moment it answered; the settlement runs
-- after the budget's settlement and the timeline's write (several database round trips later: 0.1–1 s on a loaded
-- machine), by when our bucket has refilled — and capping it by the stale figure threw that refill away on EVERY
-- answer. At 60,000 input tokens a minute that is 1,000 tokens a second of lag per call: in bench:night the input
-- bucket, not the output one, became the limit (507 of 808 paced waits) although the output bound is the larger.
-- Now the app passes when it read the answer (p_observed_at) and the remaining figures are refilled at the limit's
-- rate from then to the settlement's time before they cap anything.
--
-- Counters on rate_limits for attributing the makespan (bench:night prints them):
--   trimmed_input / trimmed_output   tokens our buckets lost to the provider's remaining figures (the cap that binds)
--   excess_output                    output beyond the expectation, charged at settlement (the debt of long answers)
--   admitted_after_wait, wake_late_ms  tickets admitted after a paced wait, and the sum of how long after their
--                                    expected time they came back (the wake-up's latency: engine timer + step)
--   settles_observed, settle_lag_ms  settlements that said when their answer was read, and the sum of the lag from
--                                    then to the settlement (× the limit's rate: what capping by the stale figure cut)

alter table public.rate_limits
  add column trimmed_input bigint not null default 0,
  add column trimmed_output bigint not null default 0,
  add column excess_output bigint not null default 0,
  add column admitted_after_wait bigint not null default 0,
  add column wake_late_ms bigint not null default 0,
  add column settles_observed bigint not null default 0,
  add column settle_lag_ms bigint not null default 0;

drop function public.settle_rate_limit(text, integer, integer, integer, integer, integer, integer, integer, integer, timestamptz);

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
  p_now timestamptz default now(),
  p_observed_at timestamptz default null
) returns void
language plpgsql set search_path = '' as $$
declare
  v     public.rate_limits;
  v_now timestamptz := coalesce(p_now, now());
  v_cal boolean := coalesce(p_requests_limit, p_input_limit, p_output_limit) is not null;
  -- Seconds between the answer (the provider's figures) and now: what the provider's buckets refilled meanwhile.
  v_lag double precision := greatest(coalesce(extract(epoch from (v_now - p_observed_at)), 0), 0);
  new_req boolean;
  new_in  boolean;
  new_out boolean;
  rem_req double precision;
  rem_in  double precision;
  rem_out double precision;
  cut_in  double precision := 0;
  cut_out double precision := 0;
begin
  select * into v from public.rate_limits r where r.model = p_model for update;
  if not found then
    if not v_cal then return; end if;
    insert into public.rate_limits (model) values (p_model) on conflict (model) do nothing;
    select * into v from public.rate_limits r where r.model = p_model for update;
  end if;
  v := public.rate_limit_refill(v, v_now);
  new_req := v.requests_per_minute is null and p_requests_limit is not null;
  new_in := v.input_tokens_per_minute is null and p_input_limit is not null;
  new_out := v.output_tokens_per_minute is null and p_output_limit is not null;
  if v_cal then
    v.requests_per_minute := coalesce(p_requests_limit, v.requests_per_minute);
    v.input_tokens_per_minute := coalesce(p_input_limit, v.input_tokens_per_minute);
    v.output_tokens_per_minute := coalesce(p_output_limit, v.output_tokens_per_minute);
  end if;
  -- The provider's figures brought forward to now (never above a minute's limit).
  -- (least() skips nulls: a figure the answer did not carry stays null.)
  rem_req := case when p_requests_remaining is not null then least(p_requests_remaining + v_lag * coalesce(v.requests_per_minute, 0) / 60.0, coalesce(v.requests_per_minute, p_requests_remaining)) end;
  rem_in := case when p_input_remaining is not null then least(p_input_remaining + v_lag * coalesce(v.input_tokens_per_minute, 0) / 60.0, coalesce(v.input_tokens_per_minute, p_input_remaining)) end;
  rem_out := case when p_output_remaining is not null then least(p_output_remaining + v_lag * coalesce(v.output_tokens_per_minute, 0) / 60.0, coalesce(v.output_tokens_per_minute, p_output_remaining)) end;
  -- A charge is bounded by a minute's limit (a bucket is never more than one minute in debt).
  if v.input_tokens_per_minute is not null and not new_in then
    v.input_available := greatest(v.input_available + coalesce(p_refund_input, 0), v.input_available - v.input_tokens_per_minute);
  end if;
  if v.output_tokens_per_minute is not null and not new_out then
    v.output_available := greatest(v.output_available + coalesce(p_refund_output, 0), v.output_available - v.output_tokens_per_minute);
  end if;
  if new_req then v.requests_available := coalesce(rem_req, v.requests_per_minute); end if;
  if new_in then v.input_available := coalesce(rem_in, v.input_tokens_per_minute); end if;
  if new_out then v.output_available := coalesce(rem_out, v.output_tokens_per_minute); end if;
  if rem_in is not null and not new_in then cut_in := greatest(v.input_available - rem_in, 0); end if;
  if rem_out is not null and not new_out then cut_out := greatest(v.output_available - rem_out, 0); end if;
  v.requests_available := least(v.requests_available, coalesce(rem_req, v.requests_available), coalesce(v.requests_per_minute, 0));
  v.input_available := least(v.input_available, coalesce(rem_in, v.input_available), coalesce(v.input_tokens_per_minute, 0));
  v.output_available := least(v.output_available, coalesce(rem_out, v.output_available), coalesce(v.output_tokens_per_minute, 0));
  update public.rate_limits r
     set requests_per_minute = v.requests_per_minute, input_tokens_per_minute = v.input_tokens_per_minute,
         output_tokens_per_minute = v.output_tokens_per_minute,
         requests_available = v.requests_available, input_available = v.input_available,
         output_available = v.output_available, refreshed_at = v.refreshed_at,
         source = case when v_cal then 'headers' else r.source end,
         calibrated_at = case when v_cal then v_now else r.calibrated_at end,
         trimmed_input = r.trimmed_input + round(cut_in)::bigint,
         trimmed_output = r.trimmed_output + round(cut_out)::bigint,
         excess_output = r.excess_output + greatest(-coalesce(p_refund_output, 0), 0),
         settles_observed = r.settles_observed + (p_observed_at is not null)::integer,
         settle_lag_ms = r.settle_lag_ms + round(v_lag * 1000)::bigint,
         updated_at = v_now
   where r.model = p_model;
end $$;

-- As before (20261129142000_pacing_status.sql), plus the wake-up latency of tickets admitted after a wait.
create or replace function public.take_rate_limit(
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
  v_late  double precision;
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
    -- A ticket admitted after waiting: how long after its expected time it came back (the wake-up's latency).
    select greatest(extract(epoch from (v_now - w.expected_at)) * 1000, 0) into v_late
      from public.rate_limit_waiters w where w.model = p_model and w.ticket = p_ticket;
    update public.rate_limits r
       set requests_available = case when v.requests_per_minute is null then 0 else v.requests_available - 1 end,
           input_available = case when v.input_tokens_per_minute is null then 0 else v.input_available - v_in end,
           output_available = case when v.output_tokens_per_minute is null then 0 else v.output_available - v_out end,
           refreshed_at = v.refreshed_at,
           admitted = r.admitted + 1,
           admitted_after_wait = r.admitted_after_wait + (v_late is not null)::integer,
           wake_late_ms = r.wake_late_ms + coalesce(round(v_late), 0)::bigint,
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
     where t.id = p_task_id and t.status::text in ('running', 'queued', 'waiting_budget', 'waiting_rate_limit', 'waiting_dependency');
  end if;
  return query select false, v_until, v_dim, 0, 0;
end $$;

revoke execute on all functions in schema public from public, anon, authenticated;
grant execute on all functions in schema public to service_role;
