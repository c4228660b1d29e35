-- The limiter's lock order (session 6 review): the model's rate_limits row first, then its rate_limit_in_flight rows.
-- take_rate_limit locks the model's row, then deletes the in-flight rows older than ten minutes and upserts its own
-- ticket's; settle_rate_limit (so return_rate_limit) and note_rate_limited deleted their ticket's in-flight row first
-- and locked the model's row after. A call settled more than ten minutes after its admission, or a ticket admitted
-- again while its first attempt settles, then deadlocked with an admission, and Postgres aborted one of the two: an
-- aborted settlement fails the step of a call already answered (the retry writes the call off as lost and calls the
-- model again). Both functions now lock the model's row before touching the in-flight rows; otherwise unchanged
-- (as 20261203100000). tests/integration/budget/pacing-lock-order.test.ts.

create or replace function public.settle_rate_limit(
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
  p_observed_at timestamptz default null,
  p_ticket text default null
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
  v_flight double precision;
begin
  -- The model's row first (take_rate_limit's order), then this call is no longer in flight (whatever follows).
  perform 1 from public.rate_limits r where r.model = p_model for update;
  delete from public.rate_limit_in_flight f where f.model = p_model and f.ticket = p_ticket;
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
  -- ... less the output of the other calls in flight, which ours has taken and the provider's has not (a bucket is
  -- never more than a minute in debt).
  if rem_out is not null then
    v_flight := public.rate_limit_in_flight_output(p_model, p_ticket, v_now);
    rem_out := greatest(rem_out - v_flight, -coalesce(v.output_tokens_per_minute, p_output_remaining));
  end if;
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

create or replace function public.note_rate_limited(
  p_model text,
  p_retry_after_seconds double precision,
  p_task_id uuid default null,
  p_requests_limit integer default null,
  p_requests_remaining integer default null,
  p_input_limit integer default null,
  p_input_remaining integer default null,
  p_output_limit integer default null,
  p_output_remaining integer default null,
  p_now timestamptz default now(),
  p_ticket text default null
) returns timestamptz
language plpgsql set search_path = '' as $$
declare
  v        public.rate_limits;
  v_now    timestamptz := coalesce(p_now, now());
  v_until  timestamptz := v_now + make_interval(secs => greatest(coalesce(p_retry_after_seconds, 1), 0));
  v_out    double precision;
begin
  -- The model's row first (take_rate_limit's order), then the refused call leaves the in-flight rows.
  perform 1 from public.rate_limits r where r.model = p_model for update;
  delete from public.rate_limit_in_flight f where f.model = p_model and f.ticket = p_ticket;
  insert into public.rate_limits (model) values (p_model) on conflict (model) do nothing;
  select * into v from public.rate_limits r where r.model = p_model for update;
  v := public.rate_limit_refill(v, v_now);
  if p_output_remaining is not null then
    v_out := greatest(p_output_remaining - public.rate_limit_in_flight_output(p_model, p_ticket, v_now),
                      -coalesce(p_output_limit, v.output_tokens_per_minute, p_output_remaining));
  end if;
  update public.rate_limits r
     set requests_per_minute = coalesce(p_requests_limit, r.requests_per_minute),
         input_tokens_per_minute = coalesce(p_input_limit, r.input_tokens_per_minute),
         output_tokens_per_minute = coalesce(p_output_limit, r.output_tokens_per_minute),
         requests_available = coalesce(p_requests_remaining, v.requests_available),
         input_available = coalesce(p_input_remaining, v.input_available),
         output_available = coalesce(v_out, v.output_available),
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
     where t.id = p_task_id and t.status::text in ('running', 'queued', 'waiting_budget', 'waiting_rate_limit', 'waiting_dependency');
  end if;
  return v_until;
end $$;

revoke execute on function public.settle_rate_limit(text, integer, integer, integer, integer, integer, integer, integer, integer, timestamptz, timestamptz, text) from public, anon, authenticated;
revoke execute on function public.note_rate_limited(text, double precision, uuid, integer, integer, integer, integer, integer, integer, timestamptz, text) from public, anon, authenticated;
grant execute on function public.settle_rate_limit(text, integer, integer, integer, integer, integer, integer, integer, integer, timestamptz, timestamptz, text) to service_role;
grant execute on function public.note_rate_limited(text, double precision, uuid, integer, integer, integer, integer, integer, integer, timestamptz, text) to service_role;
