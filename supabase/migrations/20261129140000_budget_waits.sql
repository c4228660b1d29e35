-- Budget waits that end when money frees up (issue 13).
--
-- * reserve_budget tells WHY it refused: 'in_flight' when the window's settled spend + this call still fits the cap
--   (the refusal is due to reservations of calls in flight, which settle at a fraction of their worst case within
--   seconds), 'settled' when settled spend alone leaves no room (only the next window, or a raised cap, helps).
--   It also returns the figures a truthful reason needs: settled, in flight, needed.
-- * A window, once open, keeps its time zone until it ends: budget_windows carries [starts_at, ends_at) and a
--   reservation lands in the window that contains its instant. A time-zone change of the agent applies from the
--   next window on. An eastward change makes the next window start where the current one ends (shorter day); a
--   westward change extends the current day to the new zone's midnight (one cap, a longer day). Never a second
--   cap for the same hours.
-- * Spend whose answer was lost (a call in flight when the process died, a cut-off or malformed 200) is written
--   off as an estimate (write_off_lost_calls): counted by the cap, shown apart as estimated.
-- * settle_budget says whether the agent has tasks waiting for money, so the caller can wake them.
-- * Real settled_at (the app passes the clock at settlement, not the turn's start).

alter table public.budget_windows
  add column timezone text,
  add column starts_at timestamptz,
  add column ends_at timestamptz,
  add column estimated_micros bigint not null default 0 check (estimated_micros >= 0);

update public.budget_windows w
   set timezone = a.budget_timezone,
       starts_at = (w.window_start::timestamp at time zone a.budget_timezone),
       ends_at = ((w.window_start + 1)::timestamp at time zone a.budget_timezone)
  from public.agents a
 where a.id = w.agent_id;

alter table public.budget_windows
  alter column timezone set not null,
  alter column starts_at set not null,
  alter column ends_at set not null,
  add constraint budget_windows_range check (ends_at > starts_at);

-- An estimated settlement: the call's outcome is unknown, the amount is input counted + expected output.
alter table public.budget_reservations add column estimated boolean not null default false;
alter table public.budget_reservations add constraint budget_reservations_estimated check (not estimated or status = 'settled');

alter table public.tasks add column estimated_cost_micros bigint not null default 0 check (estimated_cost_micros >= 0);

-- settle_budget asks "does this agent have tasks waiting for money?" on every settlement.
create index tasks_waiting_budget on public.tasks (agent_id) where status = 'waiting_budget';

-- The window containing p_now for the agent, opened if there is none. Internal to reserve_budget.
create function public.budget_open_window(p_agent_id text, p_tz text, p_cap bigint, p_now timestamptz)
returns public.budget_windows
language plpgsql set search_path = '' as $$
declare
  v     public.budget_windows;
  v_day date;
  v_prev timestamptz;
begin
  select * into v from public.budget_windows w
   where w.agent_id = p_agent_id and w.starts_at <= p_now and w.ends_at > p_now
   order by w.window_start desc limit 1;
  if found then
    return v;
  end if;

  v_day := (p_now at time zone p_tz)::date;
  -- The new window starts at the local midnight, or where the previous window ended if that is later (the zone
  -- moved east mid-window: those hours were already covered by the old window's cap).
  select max(w.ends_at) into v_prev from public.budget_windows w where w.agent_id = p_agent_id and w.ends_at <= p_now;
  insert into public.budget_windows as w (agent_id, window_start, cap_micros, timezone, starts_at, ends_at, updated_at)
  values (p_agent_id, v_day, p_cap, p_tz,
          greatest((v_day::timestamp at time zone p_tz), coalesce(v_prev, '-infinity'::timestamptz)),
          ((v_day + 1)::timestamp at time zone p_tz), p_now)
  on conflict (agent_id, window_start) do update
     -- The label exists but does not contain p_now: the zone moved west (the day is extended to the new zone's
     -- midnight, under the same cap), or the caller's clock is behind the window.
     set starts_at = least(w.starts_at, excluded.starts_at),
         ends_at = greatest(w.ends_at, excluded.ends_at),
         timezone = case when excluded.ends_at > w.ends_at then excluded.timezone else w.timezone end
   where not (w.starts_at <= p_now and w.ends_at > p_now)
  returning * into v;
  if not found then
    select * into v from public.budget_windows w where w.agent_id = p_agent_id and w.window_start = v_day;
  end if;
  return v;
end $$;

drop function public.reserve_budget(text, uuid, text, text, bigint, timestamptz);

-- As before (see *_budgets.sql), plus: the window is the one containing p_now (its time zone kept until it ends),
-- and a refusal says why. refusal: null when granted, 'in_flight' or 'settled' when refused (see the header).
create function public.reserve_budget(
  p_agent_id text,
  p_task_id uuid,
  p_step_id text,
  p_model text,
  p_amount_micros bigint,
  p_now timestamptz default now()
) returns table (
  ok boolean,
  reservation_id uuid,
  status public.budget_reservation_status,
  reserved_micros bigint,
  remaining_micros bigint,
  cap_micros bigint,
  window_start date,
  next_window_at timestamptz,
  refusal text,
  settled_micros bigint,
  in_flight_micros bigint
)
language plpgsql set search_path = '' as $$
#variable_conflict use_column
declare
  v_now       timestamptz := coalesce(p_now, now());
  v_cap       bigint;
  v_tz        text;
  v_owner     text;
  v_win       public.budget_windows;
  v_window    date;
  v_live      public.budget_reservations;
  v_id        uuid;
  v_committed bigint;
begin
  if p_agent_id is null or p_task_id is null or p_step_id is null or p_model is null then
    raise exception 'reserve_budget: agent, task, step and model are required' using errcode = '22023';
  end if;
  if p_amount_micros is null or p_amount_micros < 0 then
    raise exception 'reserve_budget: amount must be >= 0 micro-dollars, got %', p_amount_micros using errcode = '22023';
  end if;

  select a.daily_budget_micros, a.budget_timezone, t.agent_id into v_cap, v_tz, v_owner
    from public.agents a left join public.tasks t on t.id = p_task_id
   where a.id = p_agent_id;
  if not found then
    raise exception 'reserve_budget: unknown agent %', p_agent_id using errcode = 'NSB01';
  end if;
  if v_owner is null then
    raise exception 'reserve_budget: unknown task %', p_task_id using errcode = 'NSB02';
  end if;
  if v_owner <> p_agent_id then
    raise exception 'reserve_budget: task % belongs to agent %, not %', p_task_id, v_owner, p_agent_id
      using errcode = 'NSB02';
  end if;

  for v_round in 1..5 loop
    select * into v_live from public.budget_reservations r
     where r.task_id = p_task_id and r.step_id = p_step_id and r.status <> 'released';
    if found then
      select * into v_win from public.budget_windows w
       where w.agent_id = p_agent_id and w.window_start = v_live.window_start;
      return query select true, v_live.id, v_live.status, v_live.reserved_micros,
        greatest(v_cap - coalesce(v_win.reserved_micros + v_win.settled_micros, 0), 0), v_cap, v_live.window_start,
        v_win.ends_at, null::text, v_win.settled_micros, v_win.reserved_micros;
      return;
    end if;

    v_win := public.budget_open_window(p_agent_id, v_tz, v_cap, v_now);
    v_window := v_win.window_start;

    insert into public.budget_reservations (task_id, step_id, agent_id, model, window_start, reserved_micros, reserved_at)
    values (p_task_id, p_step_id, p_agent_id, p_model, v_window, p_amount_micros, v_now)
    on conflict (task_id, step_id) where status <> 'released' do nothing
    returning id into v_id;
    if v_id is null then
      continue;
    end if;

    -- The window's row last (the agent's hot lock); the WHERE re-checks the cap on the latest committed version.
    update public.budget_windows w
       set reserved_micros = w.reserved_micros + p_amount_micros,
           cap_micros = v_cap,
           reservations = w.reservations + 1,
           updated_at = v_now
     where w.agent_id = p_agent_id and w.window_start = v_window
       and w.reserved_micros + w.settled_micros + p_amount_micros <= v_cap
    returning w.* into v_win;

    if not found then
      delete from public.budget_reservations r where r.id = v_id;
      select * into v_win from public.budget_windows w
       where w.agent_id = p_agent_id and w.window_start = v_window;
      return query select false, null::uuid, null::public.budget_reservation_status, 0::bigint,
        greatest(v_cap - (v_win.reserved_micros + v_win.settled_micros), 0), v_cap, v_win.window_start,
        v_win.ends_at,
        case when v_win.settled_micros + p_amount_micros > v_cap then 'settled' else 'in_flight' end,
        v_win.settled_micros, v_win.reserved_micros;
      return;
    end if;

    return query select true, v_id, 'reserved'::public.budget_reservation_status, p_amount_micros,
      greatest(v_cap - (v_win.reserved_micros + v_win.settled_micros), 0), v_cap, v_win.window_start,
      v_win.ends_at, null::text, v_win.settled_micros, v_win.reserved_micros;
    return;
  end loop;
  raise exception 'reserve_budget: step % of task % kept changing; try again', p_step_id, p_task_id
    using errcode = '40001';
end $$;

drop function public.settle_budget(uuid, text, bigint, integer, integer, integer, integer, timestamptz);

-- As before, plus `waiters`: true when the agent has tasks waiting for money (waiting_budget), so the caller wakes
-- them (the money this settlement gave back may be what they wait for).
create function public.settle_budget(
  p_task_id uuid,
  p_step_id text,
  p_actual_micros bigint,
  p_input_tokens integer default 0,
  p_output_tokens integer default 0,
  p_cache_creation_input_tokens integer default 0,
  p_cache_read_input_tokens integer default 0,
  p_now timestamptz default now()
) returns table (
  settled boolean,
  reservation_id uuid,
  reserved_micros bigint,
  actual_micros bigint,
  remaining_micros bigint,
  window_start date,
  waiters boolean
)
language plpgsql set search_path = '' as $$
#variable_conflict use_column
declare
  v_row       public.budget_reservations;
  v_committed bigint;
  v_cap       bigint;
begin
  if p_actual_micros is null or p_actual_micros < 0 then
    raise exception 'settle_budget: actual must be >= 0 micro-dollars, got %', p_actual_micros using errcode = '22023';
  end if;

  update public.budget_reservations r
     set status = 'settled',
         actual_micros = p_actual_micros,
         input_tokens = coalesce(p_input_tokens, 0),
         output_tokens = coalesce(p_output_tokens, 0),
         cache_creation_input_tokens = coalesce(p_cache_creation_input_tokens, 0),
         cache_read_input_tokens = coalesce(p_cache_read_input_tokens, 0),
         settled_at = coalesce(p_now, now())
   where r.task_id = p_task_id and r.step_id = p_step_id and r.status = 'reserved'
  returning r.* into v_row;

  if not found then
    select * into v_row from public.budget_reservations r
     where r.task_id = p_task_id and r.step_id = p_step_id and r.status = 'settled';
    if not found then
      raise exception 'settle_budget: step % of task % has no open reservation', p_step_id, p_task_id
        using errcode = 'NSB04';
    end if;
    select w.reserved_micros + w.settled_micros into v_committed
      from public.budget_windows w where w.agent_id = v_row.agent_id and w.window_start = v_row.window_start;
    select a.daily_budget_micros into v_cap from public.agents a where a.id = v_row.agent_id;
    return query select false, v_row.id, v_row.reserved_micros, v_row.actual_micros,
      greatest(v_cap - coalesce(v_committed, 0), 0), v_row.window_start, false;
    return;
  end if;

  update public.tasks t set cost_micros = t.cost_micros + p_actual_micros where t.id = p_task_id;
  select a.daily_budget_micros into v_cap from public.agents a where a.id = v_row.agent_id;

  update public.budget_windows w
     set reserved_micros = w.reserved_micros - v_row.reserved_micros,
         settled_micros = w.settled_micros + p_actual_micros,
         settlements = w.settlements + 1,
         updated_at = coalesce(p_now, now())
   where w.agent_id = v_row.agent_id and w.window_start = v_row.window_start
  returning w.reserved_micros + w.settled_micros into v_committed;

  return query select true, v_row.id, v_row.reserved_micros, p_actual_micros,
    greatest(v_cap - v_committed, 0), v_row.window_start,
    exists (select 1 from public.tasks t where t.agent_id = v_row.agent_id and t.status = 'waiting_budget');
end $$;

-- Charges every open reservation of a turn (step p_turn_id or its retries `<turn>#…`) as an ESTIMATE: the call's
-- outcome is unknown (the process died while it was in flight, or its answer could not be read), and the provider
-- most likely billed it. The estimate is the counted input (p_input_micros) plus the expected output — the mean
-- output of this agent and model over its last 50 real settlements, or half of max_tokens without history — at
-- p_output_micros_per_mtok; never below the input cost, never above the reservation (the worst case).
-- Then returns the key the retry must reserve under (a fresh one: this turn's earlier keys are spent).
create function public.write_off_lost_calls(
  p_task_id uuid,
  p_turn_id text,
  p_input_tokens integer,
  p_input_micros bigint,
  p_output_micros_per_mtok bigint,
  p_max_tokens integer,
  p_now timestamptz default now()
) returns table (written_off integer, estimated_micros bigint, next_key text)
language plpgsql set search_path = '' as $$
declare
  v_row      public.budget_reservations;
  v_expected integer;
  v_amount   bigint;
  v_n        integer := 0;
  v_total    bigint := 0;
  v_keys     integer;
begin
  if p_task_id is null or p_turn_id is null or coalesce(p_input_micros, -1) < 0 or coalesce(p_output_micros_per_mtok, -1) < 0
     or coalesce(p_max_tokens, -1) < 0 then
    raise exception 'write_off_lost_calls: task, turn, input cost, output price and max_tokens are required' using errcode = '22023';
  end if;

  for v_row in
    select * from public.budget_reservations r
     where r.task_id = p_task_id and (r.step_id = p_turn_id or r.step_id like p_turn_id || '#%') and r.status = 'reserved'
     order by r.reserved_at
     for update
  loop
    select least(p_max_tokens, coalesce(round(avg(h.output_tokens))::integer, p_max_tokens / 2)) into v_expected
      from (select r.output_tokens from public.budget_reservations r
             where r.agent_id = v_row.agent_id and r.model = v_row.model and r.status = 'settled' and not r.estimated
             order by r.settled_at desc limit 50) h;
    v_amount := least(v_row.reserved_micros,
                      p_input_micros + ceil(v_expected::numeric * p_output_micros_per_mtok / 1000000)::bigint);

    update public.budget_reservations r
       set status = 'settled', estimated = true, actual_micros = v_amount,
           input_tokens = coalesce(p_input_tokens, 0), output_tokens = v_expected,
           settled_at = coalesce(p_now, now())
     where r.id = v_row.id;
    update public.tasks t
       set cost_micros = t.cost_micros + v_amount, estimated_cost_micros = t.estimated_cost_micros + v_amount
     where t.id = p_task_id;
    update public.budget_windows w
       set reserved_micros = w.reserved_micros - v_row.reserved_micros,
           settled_micros = w.settled_micros + v_amount,
           estimated_micros = w.estimated_micros + v_amount,
           settlements = w.settlements + 1,
           updated_at = coalesce(p_now, now())
     where w.agent_id = v_row.agent_id and w.window_start = v_row.window_start;
    v_n := v_n + 1;
    v_total := v_total + v_amount;
  end loop;

  select count(*) into v_keys from public.budget_reservations r
   where r.task_id = p_task_id and (r.step_id = p_turn_id or r.step_id like p_turn_id || '#%') and r.status <> 'released';
  return query select v_n, v_total, case when v_keys = 0 then p_turn_id else p_turn_id || '#' || (v_keys + 1) end;
end $$;

-- The notice tells what really happened: settled spend, money in flight, what the next call needs.
create or replace function public.note_budget_exhausted(
  p_agent_id text,
  p_task_id uuid,
  p_window date,
  p_next_window_at timestamptz default null,
  p_payload jsonb default null,
  p_now timestamptz default now()
) returns boolean
language plpgsql set search_path = '' as $$
declare
  v_agent public.agents;
  v_win   public.budget_windows;
  v_need  bigint := nullif(p_payload ->> 'needed_micros', '')::bigint;
  v_usd   text := 'FM999999990.00';
  v_tz    text;
begin
  select * into v_agent from public.agents a where a.id = p_agent_id;
  if not found then
    raise exception 'note_budget_exhausted: unknown agent %', p_agent_id using errcode = 'NSB01';
  end if;
  if p_window is null then
    raise exception 'note_budget_exhausted: the window is required' using errcode = '22023';
  end if;
  select * into v_win from public.budget_windows w where w.agent_id = p_agent_id and w.window_start = p_window;
  v_tz := coalesce(v_win.timezone, v_agent.budget_timezone);

  insert into public.notifications (kind, dedupe_key, agent_id, task_id, title, body, payload, created_at)
  values (
    'budget_exhausted',
    format('budget_exhausted:%s:%s', v_agent.id, p_window),
    v_agent.id,
    p_task_id,
    format('%s agent reached its daily budget', v_agent.display_name),
    format('The %s agent has spent $%s of its $%s budget for %s (%s)%s%s. Its work waits%s.',
      v_agent.display_name,
      to_char(coalesce(v_win.settled_micros, 0) / 1000000.0, v_usd),
      to_char(v_agent.daily_budget_micros / 1000000.0, v_usd),
      p_window, v_tz,
      case when coalesce(v_win.reserved_micros, 0) > 0
           then format(', with $%s more in flight', to_char(v_win.reserved_micros / 1000000.0, 'FM999999990.0000')) else '' end,
      case when v_need is not null
           then format('; the next call needs up to $%s', to_char(v_need / 1000000.0, 'FM999999990.0000')) else '' end,
      case when p_next_window_at is null then ' for the next budget window or a higher cap'
           else format(' until %s or a higher cap', to_char(p_next_window_at at time zone v_tz, 'YYYY-MM-DD HH24:MI') || ' ' || v_tz) end),
    jsonb_build_object(
      'agent_id', v_agent.id,
      'task_id', p_task_id,
      'window_start', p_window,
      'cap_micros', v_agent.daily_budget_micros,
      'settled_micros', coalesce(v_win.settled_micros, 0),
      'in_flight_micros', coalesce(v_win.reserved_micros, 0),
      'budget_timezone', v_tz,
      'next_window_at', p_next_window_at
    ) || coalesce(p_payload, '{}'::jsonb),
    coalesce(p_now, now())
  )
  on conflict (dedupe_key) do nothing;
  return found;
end $$;

-- Spend reports, as before, with estimated spend (lost answers) shown apart. settled_micros includes it (the cap
-- counts it); estimated_micros is the part of settled_micros that is an estimate.
drop function public.spend_by_agent_day(text, date, date);
create function public.spend_by_agent_day(
  p_agent_id text default null,
  p_from date default null,
  p_to date default null
) returns table (
  agent_id text,
  window_start date,
  settled_micros bigint,
  estimated_micros bigint,
  reserved_micros bigint,
  committed_micros bigint,
  cap_micros bigint,
  reservations integer,
  settlements integer,
  input_tokens bigint,
  output_tokens bigint,
  cache_creation_input_tokens bigint,
  cache_read_input_tokens bigint,
  timezone text,
  starts_at timestamptz,
  ends_at timestamptz
)
language sql stable set search_path = '' as $$
  select w.agent_id, w.window_start, w.settled_micros, w.estimated_micros, w.reserved_micros,
         w.reserved_micros + w.settled_micros, w.cap_micros, w.reservations, w.settlements,
         coalesce(t.input_tokens, 0), coalesce(t.output_tokens, 0),
         coalesce(t.cache_creation_input_tokens, 0), coalesce(t.cache_read_input_tokens, 0),
         w.timezone, w.starts_at, w.ends_at
    from public.budget_windows w
    left join lateral (
      select sum(r.input_tokens)::bigint as input_tokens, sum(r.output_tokens)::bigint as output_tokens,
             sum(r.cache_creation_input_tokens)::bigint as cache_creation_input_tokens,
             sum(r.cache_read_input_tokens)::bigint as cache_read_input_tokens
        from public.budget_reservations r
       where r.window_start = w.window_start and r.agent_id = w.agent_id and r.status = 'settled'
    ) t on true
   where (p_agent_id is null or w.agent_id = p_agent_id)
     and (p_from is null or w.window_start >= p_from)
     and (p_to is null or w.window_start <= p_to)
   order by w.window_start desc, w.agent_id
$$;

drop function public.spend_by_task(uuid);
create function public.spend_by_task(p_task_id uuid)
returns table (
  task_id uuid,
  agent_id text,
  settled_micros bigint,
  estimated_micros bigint,
  reserved_micros bigint,
  calls integer,
  estimated_calls integer,
  input_tokens bigint,
  output_tokens bigint,
  cache_creation_input_tokens bigint,
  cache_read_input_tokens bigint
)
language sql stable set search_path = '' as $$
  select r.task_id, min(r.agent_id),
         coalesce(sum(r.actual_micros) filter (where r.status = 'settled'), 0)::bigint,
         coalesce(sum(r.actual_micros) filter (where r.status = 'settled' and r.estimated), 0)::bigint,
         coalesce(sum(r.reserved_micros) filter (where r.status = 'reserved'), 0)::bigint,
         (count(*) filter (where r.status = 'settled'))::integer,
         (count(*) filter (where r.status = 'settled' and r.estimated))::integer,
         coalesce(sum(r.input_tokens), 0)::bigint, coalesce(sum(r.output_tokens), 0)::bigint,
         coalesce(sum(r.cache_creation_input_tokens), 0)::bigint, coalesce(sum(r.cache_read_input_tokens), 0)::bigint
    from public.budget_reservations r
   where r.task_id = p_task_id and r.status <> 'released'
   group by r.task_id
$$;

drop function public.spend_by_model(date, date, text, uuid);
create function public.spend_by_model(
  p_from date default null,
  p_to date default null,
  p_agent_id text default null,
  p_task_id uuid default null
) returns table (
  model text,
  settled_micros bigint,
  estimated_micros bigint,
  reserved_micros bigint,
  calls integer,
  input_tokens bigint,
  output_tokens bigint,
  cache_creation_input_tokens bigint,
  cache_read_input_tokens bigint
)
language sql stable set search_path = '' as $$
  select r.model,
         coalesce(sum(r.actual_micros) filter (where r.status = 'settled'), 0)::bigint,
         coalesce(sum(r.actual_micros) filter (where r.status = 'settled' and r.estimated), 0)::bigint,
         coalesce(sum(r.reserved_micros) filter (where r.status = 'reserved'), 0)::bigint,
         (count(*) filter (where r.status = 'settled'))::integer,
         coalesce(sum(r.input_tokens), 0)::bigint, coalesce(sum(r.output_tokens), 0)::bigint,
         coalesce(sum(r.cache_creation_input_tokens), 0)::bigint, coalesce(sum(r.cache_read_input_tokens), 0)::bigint
    from public.budget_reservations r
   where r.status <> 'released'
     and (p_from is null or r.window_start >= p_from)
     and (p_to is null or r.window_start <= p_to)
     and (p_agent_id is null or r.agent_id = p_agent_id)
     and (p_task_id is null or r.task_id = p_task_id)
   group by r.model
   order by 2 desc, r.model
$$;

revoke execute on all functions in schema public from public, anon, authenticated;
grant execute on all functions in schema public to service_role;
