-- Pacing (issue 13, makespan): within a priority, the line is ordered by the task's age, as the slot line is.
--
-- Until now a ticket's place was the time its call first asked. A research task asks once per turn (5-8 turns), so
-- after every turn it went behind every call queued meanwhile: a chain of n turns waited n times for the whole line,
-- while single-call tasks (content drafts) queued once. bench:night's trace (docs/benchmarks.md, session 5) showed
-- what that does to the night: the output-heavy single calls ran first and together (the input bucket sat full), the
-- input-heavy chains were pushed to the end and ran alone (the output bucket sat full). Ordering by the task's
-- created_at (the slot line's order: priority, then age) lets started chains keep their place, so the two kinds of
-- work overlap all night and both buckets drain.
--
-- The backfill (20261201122000) grows with the wait it fills: a call the buckets hold now may go ahead of the tickets
-- when a bucket it uses is ≥ 75 % of a minute (it will overflow while they wait) and has room after them, and it sets
-- them back by at most max(1 s, half of what they wait anyway) — the fixed 1 s let only the smallest calls through
-- while a ticket waited tens of seconds for input. A ticket's delay by backfills is bounded: no backfill may move any
-- ticket ahead past 300 s after it began waiting (rate_limit_waiters.waiting_since), and none passes a higher priority.
--
-- Starvation: a ticket is passed only by higher priorities, by calls of tasks submitted before its own, and by the
-- backfill (never past 300 s of waiting): calls of tasks submitted later never go first. Its wait is therefore bounded
-- by the work of the older tasks of its priority and above (finite: each task's turns are bounded), or 300 s if the
-- backfill is what holds it. Calls without a task (none in the app today) keep the old order: the time they first asked.

alter table public.rate_limit_waiters add column waiting_since timestamptz;

create or replace function public.rate_limit_backfill(
  v public.rate_limits, p_pri integer, p_model text, p_ticket text, p_enq timestamptz, p_now timestamptz,
  a_req double precision, a_in double precision, a_out double precision, v_in double precision, v_out double precision
) returns boolean
language plpgsql stable set search_path = '' as $$
declare
  v_delay double precision := 0;
  v_head double precision := 0;
  v_oldest timestamptz;
begin
  -- The call must fit the buckets by itself.
  if not ((v.requests_per_minute is null or v.requests_available >= 1)
          and (v.input_tokens_per_minute is null or v.input_available >= v_in)
          and (v.output_tokens_per_minute is null or v.output_available >= v_out)) then
    return false;
  end if;
  -- A bucket it uses is ≥ 75 % full (a quarter of a minute from losing refill) and has room after the tickets ahead.
  if not ((v.input_tokens_per_minute is not null and v_in > 0 and v.input_available >= a_in + v_in
           and v.input_available >= 0.75 * v.input_tokens_per_minute)
          or (v.output_tokens_per_minute is not null and v_out > 0 and v.output_available >= a_out + v_out
              and v.output_available >= 0.75 * v.output_tokens_per_minute)) then
    return false;
  end if;
  -- How long the tickets ahead wait anyway (their own shortfall, the longest limit).
  if v.requests_per_minute is not null and v.requests_available < a_req then v_head := greatest(v_head, (a_req - v.requests_available) * 60.0 / v.requests_per_minute); end if;
  if v.input_tokens_per_minute is not null and v.input_available < a_in then v_head := greatest(v_head, (a_in - v.input_available) * 60.0 / v.input_tokens_per_minute); end if;
  if v.output_tokens_per_minute is not null and v.output_available < a_out then v_head := greatest(v_head, (a_out - v.output_available) * 60.0 / v.output_tokens_per_minute); end if;
  -- How long it sets back the tickets ahead in the dimensions they wait for.
  if v.requests_per_minute is not null and v.requests_available < a_req + 1 then v_delay := greatest(v_delay, 60.0 / v.requests_per_minute); end if;
  if v.input_tokens_per_minute is not null and v.input_available < a_in + v_in then v_delay := greatest(v_delay, v_in * 60.0 / v.input_tokens_per_minute); end if;
  if v.output_tokens_per_minute is not null and v.output_available < a_out + v_out then v_delay := greatest(v_delay, v_out * 60.0 / v.output_tokens_per_minute); end if;
  if v_delay > greatest(1.0, 0.5 * v_head) then
    return false;
  end if;
  -- Never ahead of a higher priority.
  if exists (select 1 from public.rate_limit_waiters w
              where w.model = p_model and w.ticket <> p_ticket and w.expires_at > p_now and w.priority > p_pri) then
    return false;
  end if;
  -- Never moves a ticket ahead past 300 s after it began waiting.
  select min(coalesce(w.waiting_since, w.enqueued_at)) into v_oldest
    from public.rate_limit_waiters w
   where w.model = p_model and w.ticket <> p_ticket and w.expires_at > p_now
     and w.priority = p_pri and (w.enqueued_at, w.ticket) < (p_enq, p_ticket);
  return v_oldest is null or extract(epoch from (p_now - v_oldest)) + v_head + v_delay <= 300;
end $$;

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

revoke execute on all functions in schema public from public, anon, authenticated;
grant execute on all functions in schema public to service_role;
