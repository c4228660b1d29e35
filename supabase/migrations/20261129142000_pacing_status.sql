-- A task that waits (for money, the rate limit or a dependency) and then meets the rate limit gets the rate limit's
-- status and reason: take_rate_limit and note_rate_limited used to change only running or queued tasks, so a task
-- retrying after a wait kept a stale reason (a waiting task is marked running only once its call is admitted).

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
     where t.id = p_task_id and t.status::text in ('running', 'queued', 'waiting_budget', 'waiting_rate_limit', 'waiting_dependency');
  end if;
  return query select false, v_until, v_dim, 0, 0;
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
     where t.id = p_task_id and t.status::text in ('running', 'queued', 'waiting_budget', 'waiting_rate_limit', 'waiting_dependency');
  end if;
  return v_until;
end $$;

revoke execute on all functions in schema public from public, anon, authenticated;
grant execute on all functions in schema public to service_role;
