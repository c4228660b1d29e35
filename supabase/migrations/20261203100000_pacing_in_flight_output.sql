-- Pacing (issue 13, 429s): our output bucket and the provider's are compared on the same terms.
--
-- Our output bucket takes a call's expected output when the call is admitted; the provider's takes output as it is
-- produced, when the answer ends ("max_tokens does not factor into OTPM"). Every settlement capped our bucket by the
-- answer's anthropic-ratelimit-output-tokens-remaining, a figure that does not yet include the output of the calls
-- still in flight, which ours already took: whenever the provider's figure was the lower one (it had charged output
-- ours never took), the cap left ours that in-flight output too high, and it stayed so. The night's first second
-- makes exactly that gap: a model's calls are not paced until the first answer's headers teach its limits, so the
-- calls admitted meanwhile are charged by the provider but never by us (bench:night on a quiet machine: the double's
-- output bucket at −2,418 tokens while ours still admitted; 15–18 429s, 1.6–2.0 % of the calls, goal ≤ 1 %).
--
-- Now every admitted call is recorded in flight (rate_limit_in_flight: its expected output, until its settlement,
-- return, 429 or ten minutes, the longest a call is waited for), paced or not; and the provider's output remaining is
-- reduced by the output of the other calls in flight before it calibrates or caps our bucket. So the first
-- calibration starts the bucket below the provider's figure by what the unpaced calls will still produce, and each
-- later cap compares like with like. Input and requests need no such correction: the provider counts them when a
-- request starts, as we do.
--
-- The subtraction errs on the safe side: a call answered but not yet settled is in the provider's figure and still in
-- flight for us (counted twice for the 0.1–1 s between its answer and its settlement), and a real answer's output
-- produced so far is already counted by the provider.

create table public.rate_limit_in_flight (
  model         text not null,
  ticket        text not null check (length(ticket) between 1 and 300),
  output_tokens integer not null check (output_tokens >= 0),
  admitted_at   timestamptz not null,
  primary key (model, ticket)
);
alter table public.rate_limit_in_flight enable row level security;

-- The expected output of a model's calls in flight, other than p_ticket's (calls older than ten minutes are presumed
-- lost: their process died, or their answer was written off).
create function public.rate_limit_in_flight_output(p_model text, p_ticket text, p_now timestamptz)
returns double precision
language sql stable set search_path = '' as $$
  select coalesce(sum(f.output_tokens), 0)::double precision
    from public.rate_limit_in_flight f
   where f.model = p_model and f.ticket is distinct from p_ticket and f.admitted_at > p_now - interval '10 minutes';
$$;

-- As 20261202101000, plus: every admitted call (paced or not) is recorded in rate_limit_in_flight.
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
    -- Unpaced (no limits known yet), but in flight: the first calibration subtracts what it will still produce.
    insert into public.rate_limit_in_flight as f (model, ticket, output_tokens, admitted_at)
    values (p_model, p_ticket, p_output_tokens, v_now)
    on conflict (model, ticket) do update set output_tokens = excluded.output_tokens, admitted_at = excluded.admitted_at;
    return query select true, null::timestamptz, null::text, p_input_tokens, p_output_tokens;
    return;
  end if;

  v := public.rate_limit_refill(v, v_now);
  -- A call larger than a whole minute's limit still runs, when the bucket is full.
  v_in := least(p_input_tokens, coalesce(v.input_tokens_per_minute, p_input_tokens));
  v_out := least(p_output_tokens, coalesce(v.output_tokens_per_minute, p_output_tokens));

  delete from public.rate_limit_waiters w where w.model = p_model and w.expires_at < v_now - interval '10 minutes';
  delete from public.rate_limit_in_flight f where f.model = p_model and f.admitted_at < v_now - interval '10 minutes';
  select w.enqueued_at into v_enq from public.rate_limit_waiters w where w.model = p_model and w.ticket = p_ticket;
  -- A call of a task takes its place in the line by the task's age (when it was submitted), not by when this call
  -- first asked: a chain of turns keeps its place from turn to turn instead of going behind everything queued since.
  if v_enq is null and p_task_id is not null then
    select t.created_at into v_enq from public.tasks t where t.id = p_task_id;
  end if;
  v_enq := coalesce(v_enq, v_now);
  select coalesce(count(*), 0), coalesce(sum(w.input_tokens), 0), coalesce(sum(w.output_tokens), 0)
    into a_req, a_in, a_out
    from public.rate_limit_waiters w
   where w.model = p_model and w.ticket <> p_ticket and w.expires_at > v_now
     and (w.priority > v_pri or (w.priority = v_pri and (w.enqueued_at, w.ticket) < (v_enq, p_ticket)));

  if v.blocked_until is not null and v.blocked_until > v_now then
    v_until := v.blocked_until;
    v_dim := 'retry_after';
  elsif ((v.requests_per_minute is null or v.requests_available >= a_req + 1)
         and (v.input_tokens_per_minute is null or v.input_available >= a_in + v_in)
         and (v.output_tokens_per_minute is null or v.output_available >= a_out + v_out))
     or public.rate_limit_backfill(v, v_pri, p_model, p_ticket, v_enq, v_now, a_req, a_in, a_out, v_in, v_out) then
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
           backfilled = r.backfilled + (not ((v.requests_per_minute is null or v.requests_available >= a_req + 1)
                                             and (v.input_tokens_per_minute is null or v.input_available >= a_in + v_in)
                                             and (v.output_tokens_per_minute is null or v.output_available >= a_out + v_out)))::integer,
           wake_late_ms = r.wake_late_ms + coalesce(round(v_late), 0)::bigint,
           updated_at = v_now
     where r.model = p_model;
    delete from public.rate_limit_waiters w where w.model = p_model and w.ticket = p_ticket;
    insert into public.rate_limit_in_flight as f (model, ticket, output_tokens, admitted_at)
    values (p_model, p_ticket, v_out::integer, v_now)
    on conflict (model, ticket) do update set output_tokens = excluded.output_tokens, admitted_at = excluded.admitted_at;
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
  insert into public.rate_limit_waiters as w (model, ticket, priority, enqueued_at, waiting_since, input_tokens, output_tokens, expected_at, expires_at)
  values (p_model, p_ticket, v_pri, v_enq, v_now, v_in::integer, v_out::integer, v_until, v_until + interval '2 minutes')
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


-- As 20261201121000, plus p_ticket: the settled call leaves rate_limit_in_flight, and the provider's output remaining
-- is reduced by the other calls in flight before it calibrates or caps our output bucket.
drop function public.settle_rate_limit(text, integer, integer, integer, integer, integer, integer, integer, integer, timestamptz, timestamptz);

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
  -- This call is no longer in flight (whatever follows).
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


-- As 20261129142000, plus p_ticket: the refused call leaves rate_limit_in_flight (a 429 is not billed), and the
-- provider's output remaining replaces ours less the output of the calls still in flight.
drop function public.note_rate_limited(text, double precision, uuid, integer, integer, integer, integer, integer, integer, timestamptz);

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

-- As 20261129141000, plus p_ticket: the call was not sent, so it is no longer in flight.
drop function public.return_rate_limit(text, integer, integer, timestamptz);

create function public.return_rate_limit(p_model text, p_input integer, p_output integer, p_now timestamptz default now(), p_ticket text default null)
returns void
language sql set search_path = '' as $$
  select public.settle_rate_limit(p_model, p_input, p_output, p_now => p_now, p_ticket => p_ticket);
  update public.rate_limits r
     set requests_available = least(r.requests_available + 1, coalesce(r.requests_per_minute, 0))
   where r.model = p_model and r.requests_per_minute is not null;
$$;

revoke execute on all functions in schema public from public, anon, authenticated;
grant execute on all functions in schema public to service_role;
