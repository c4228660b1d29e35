-- Budgets: hard per-agent daily dollar caps, enforced in Postgres.
--
-- Before every model call the app reserves the call's worst case (reserve_budget); afterwards it settles the real
-- cost (settle_budget) or, when the call failed, gives the reservation back (release_budget). Each of these is one
-- function call: row locks and conditional updates decide every race, and the application never does
-- read-modify-write on money.
--
-- Two tables carry the money:
--   budget_reservations  the spend ledger: one row per reservation, keyed by (task_id, step_id)
--   budget_windows       one counter row per agent per budget window (the agent's local calendar day), so a
--                        reservation is O(1): committed = reserved_micros (reserved, not yet settled)
--                                                          + settled_micros (settled actuals)
-- The counters are a materialisation of the ledger; every function changes both in the same transaction, so
--   budget_windows.reserved_micros = sum(reserved_micros) of the window's ledger rows with status 'reserved'
--   budget_windows.settled_micros  = sum(actual_micros)   of the window's ledger rows with status 'settled'
-- hold at every commit (the tests check it after every concurrent scenario).
--
-- Lock order, everywhere: ledger row, then tasks row, then the window counter row — the counter last, so the one
-- hot lock per agent is held as briefly as possible (until commit) and no two functions can deadlock.
--
-- Error codes raised here (SQLSTATE, class NSB = Nightshift budget):
--   NSB01 unknown agent   NSB02 unknown task / task belongs to another agent   NSB04 settle without a reservation
--   22023 invalid argument (negative amount, missing key, unknown time zone)

create type public.budget_reservation_status as enum ('reserved', 'settled', 'released');

-- The spend ledger. A step has at most one live ('reserved' or 'settled') reservation; a released one stays as
-- history (a failed call attempt), and the step's retry reserves anew in a new row.
create table public.budget_reservations (
  id                          uuid primary key default gen_random_uuid(),
  task_id                     uuid not null references public.tasks(id),
  step_id                     text not null check (length(step_id) between 1 and 200),
  -- No foreign key to agents on purpose: every insert would take a KEY SHARE lock on the one agents row that all
  -- of an agent's concurrent reservations share (a multixact hot spot). reserve_budget checks the agent and that
  -- the task belongs to it; budget_windows references agents.
  agent_id                    text not null,
  model                       text not null check (length(model) between 1 and 200),
  window_start                date not null,
  reserved_micros             bigint not null check (reserved_micros >= 0),
  actual_micros               bigint check (actual_micros >= 0),
  input_tokens                integer not null default 0 check (input_tokens >= 0),
  output_tokens               integer not null default 0 check (output_tokens >= 0),
  cache_creation_input_tokens integer not null default 0 check (cache_creation_input_tokens >= 0),
  cache_read_input_tokens     integer not null default 0 check (cache_read_input_tokens >= 0),
  status                      public.budget_reservation_status not null default 'reserved',
  reserved_at                 timestamptz not null,
  settled_at                  timestamptz,
  released_at                 timestamptz,
  created_at                  timestamptz not null default now(),
  check ((status = 'settled') = (actual_micros is not null and settled_at is not null)),
  check ((status = 'released') = (released_at is not null))
);

-- The idempotency key: one live reservation per (task, step). Concurrent reservations of one step race on this
-- index; exactly one inserts.
create unique index budget_reservations_step on public.budget_reservations (task_id, step_id)
  where status <> 'released';
create index budget_reservations_window on public.budget_reservations (window_start, agent_id);

-- One row per agent per window. Only non-indexed columns change, with room left on each page (fillfactor), so the
-- two updates of every reserve+settle pair stay HOT updates of a single hot row.
create table public.budget_windows (
  agent_id        text not null references public.agents(id),
  window_start    date not null,
  reserved_micros bigint not null default 0 check (reserved_micros >= 0),
  settled_micros  bigint not null default 0 check (settled_micros >= 0),
  -- The agent's cap when this window last took a reservation (reserve_budget always reads agents' current cap).
  cap_micros      bigint not null check (cap_micros >= 0),
  reservations    integer not null default 0,
  settlements     integer not null default 0,
  updated_at      timestamptz not null default now(),
  primary key (agent_id, window_start)
) with (fillfactor = 50);

-- Things the operator is told. Delivery (email, webhook, the console) comes with a later issue and uses the
-- delivery columns; the dedupe key makes "tell once" a unique-index decision.
create table public.notifications (
  id              uuid primary key default gen_random_uuid(),
  kind            text not null check (kind ~ '^[a-z][a-z0-9_]{1,63}$'),
  dedupe_key      text not null unique check (length(dedupe_key) between 1 and 300),
  agent_id        text references public.agents(id),
  task_id         uuid references public.tasks(id) on delete set null,
  title           text not null,
  body            text not null,
  payload         jsonb not null default '{}'::jsonb,
  created_at      timestamptz not null default now(),
  delivered_at    timestamptz,
  attempts        integer not null default 0 check (attempts >= 0),
  next_attempt_at timestamptz,
  last_error      text
);
create index notifications_undelivered on public.notifications (created_at) where delivered_at is null;

alter table public.budget_reservations enable row level security;
alter table public.budget_windows enable row level security;
alter table public.notifications enable row level security;

-- A budget window is a calendar day in the agent's time zone, so the zone must be a real IANA name. Postgres would
-- also accept POSIX strings such as 'UTC+3' (which means UTC-3) and fail only at the first reservation; refuse
-- them when the operator writes them instead.
create function public.agents_check_budget_timezone() returns trigger language plpgsql as $$
begin
  if not exists (select 1 from pg_catalog.pg_timezone_names where name = new.budget_timezone) then
    raise exception 'agents.budget_timezone: unknown time zone "%" (use an IANA name such as Europe/Berlin)',
      new.budget_timezone using errcode = '22023';
  end if;
  return new;
end $$;

create trigger agents_budget_timezone before insert or update of budget_timezone on public.agents
  for each row execute function public.agents_check_budget_timezone();

-- Reserves p_amount_micros (the call's worst case) for one step of a task.
--
-- * Refuses (ok = false, nothing recorded) when the window's committed spend + the amount would exceed the agent's
--   cap. The cap is read now, so an operator's change to agents.daily_budget_micros applies to the next call.
--   cap_micros is returned so the caller can tell "wait for tomorrow" from "this call can never fit" (amount > cap).
-- * Idempotent on (task, step): if the step already has a live reservation — reserved or even settled — that one
--   is returned (ok = true, its status tells which) and nothing is reserved again. A released reservation does
--   not count: the retry of a failed call reserves anew.
-- * window_start is the agent's local calendar day at p_now; next_window_at the next local midnight as an
--   absolute time (correct across DST changes; where midnight does not exist, the first instant of the new day).
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
  next_window_at timestamptz
)
language plpgsql as $$
#variable_conflict use_column
declare
  v_now       timestamptz := coalesce(p_now, now());
  v_cap       bigint;
  v_tz        text;
  v_owner     text;
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

  -- At most a few rounds: a round repeats only when a concurrent call for the same step claimed it between our
  -- read and our insert, and the next read then finds that reservation.
  for v_round in 1..5 loop
    select * into v_live from public.budget_reservations r
     where r.task_id = p_task_id and r.step_id = p_step_id and r.status <> 'released';
    if found then
      select coalesce(w.reserved_micros + w.settled_micros, 0) into v_committed
        from public.budget_windows w where w.agent_id = p_agent_id and w.window_start = v_live.window_start;
      return query select true, v_live.id, v_live.status, v_live.reserved_micros,
        greatest(v_cap - coalesce(v_committed, 0), 0), v_cap, v_live.window_start,
        ((v_live.window_start + 1)::timestamp at time zone v_tz);
      return;
    end if;

    v_window := (v_now at time zone v_tz)::date;

    -- Claim the step first. A concurrent claim of the same step waits here for the other transaction and then
    -- does nothing; the next round returns the winner's reservation.
    insert into public.budget_reservations (task_id, step_id, agent_id, model, window_start, reserved_micros, reserved_at)
    values (p_task_id, p_step_id, p_agent_id, p_model, v_window, p_amount_micros, v_now)
    on conflict (task_id, step_id) where status <> 'released' do nothing
    returning id into v_id;
    if v_id is null then
      continue;
    end if;

    -- Then charge the window, last: this row lock serializes all of the agent's reservations and settlements in
    -- the window, and is held until commit. The WHERE is evaluated against the latest committed version after the
    -- lock is granted, so the cap check and the increment are one atomic step.
    for attempt in 1..2 loop
      update public.budget_windows w
         set reserved_micros = w.reserved_micros + p_amount_micros,
             cap_micros = v_cap,
             reservations = w.reservations + 1,
             updated_at = v_now
       where w.agent_id = p_agent_id and w.window_start = v_window
         and w.reserved_micros + w.settled_micros + p_amount_micros <= v_cap
      returning w.reserved_micros + w.settled_micros into v_committed;
      exit when found or attempt = 2;
      -- No row yet (the window's first reservation) or a refusal: make sure the row exists and decide once more.
      insert into public.budget_windows (agent_id, window_start, cap_micros, updated_at)
      values (p_agent_id, v_window, v_cap, v_now)
      on conflict on constraint budget_windows_pkey do nothing;
    end loop;

    if v_committed is null then
      -- Refused: un-claim the step (our own uncommitted row), so a later attempt can reserve it.
      delete from public.budget_reservations r where r.id = v_id;
      select w.reserved_micros + w.settled_micros into v_committed
        from public.budget_windows w where w.agent_id = p_agent_id and w.window_start = v_window;
      return query select false, null::uuid, null::public.budget_reservation_status, 0::bigint,
        greatest(v_cap - coalesce(v_committed, 0), 0), v_cap, v_window,
        ((v_window + 1)::timestamp at time zone v_tz);
      return;
    end if;

    return query select true, v_id, 'reserved'::public.budget_reservation_status, p_amount_micros,
      greatest(v_cap - v_committed, 0), v_cap, v_window, ((v_window + 1)::timestamp at time zone v_tz);
    return;
  end loop;
  raise exception 'reserve_budget: step % of task % kept changing; try again', p_step_id, p_task_id
    using errcode = '40001';
end $$;

-- Settles a step's reservation with the call's real cost and usage.
--
-- The window gets back reserved − actual. If actual > reserved, the excess is charged all the same and the window
-- may end above its cap: the reservation is meant to be an upper bound (counted input tokens + max_tokens at the
-- output price), so this should not happen, but it can — a server-side tool such as web search adds input tokens
-- and per-use fees inside one call, a character-based estimate can be beaten by exotic text, a price table can be
-- stale — and money that was really spent must never be lost from the ledger. The next reservation is then
-- refused until the window turns.
--
-- tasks.cost_micros grows by the actual exactly once. Idempotent: settling a settled step changes nothing and
-- returns settled = false with the first settlement's figures.
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
  window_start date
)
language plpgsql as $$
#variable_conflict use_column
declare
  v_row       public.budget_reservations;
  v_committed bigint;
  v_cap       bigint;
begin
  if p_actual_micros is null or p_actual_micros < 0 then
    raise exception 'settle_budget: actual must be >= 0 micro-dollars, got %', p_actual_micros using errcode = '22023';
  end if;

  -- Of concurrent settlements exactly one matches status = 'reserved' (the others re-check after its commit).
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
      -- Nothing reserved (or only released): the caller skipped reserve_budget, or settles a call it had already
      -- written off. Fail loudly rather than record spend no cap was checked for.
      raise exception 'settle_budget: step % of task % has no open reservation', p_step_id, p_task_id
        using errcode = 'NSB04';
    end if;
    select w.reserved_micros + w.settled_micros into v_committed
      from public.budget_windows w where w.agent_id = v_row.agent_id and w.window_start = v_row.window_start;
    select a.daily_budget_micros into v_cap from public.agents a where a.id = v_row.agent_id;
    return query select false, v_row.id, v_row.reserved_micros, v_row.actual_micros,
      greatest(v_cap - coalesce(v_committed, 0), 0), v_row.window_start;
    return;
  end if;

  update public.tasks t set cost_micros = t.cost_micros + p_actual_micros where t.id = p_task_id;
  select a.daily_budget_micros into v_cap from public.agents a where a.id = v_row.agent_id;

  -- The window's row last: its lock is the agent's hot spot.
  update public.budget_windows w
     set reserved_micros = w.reserved_micros - v_row.reserved_micros,
         settled_micros = w.settled_micros + p_actual_micros,
         settlements = w.settlements + 1,
         updated_at = coalesce(p_now, now())
   where w.agent_id = v_row.agent_id and w.window_start = v_row.window_start
  returning w.reserved_micros + w.settled_micros into v_committed;

  return query select true, v_row.id, v_row.reserved_micros, p_actual_micros,
    greatest(v_cap - v_committed, 0), v_row.window_start;
end $$;

-- Gives a step's whole reservation back (the call failed and cost nothing). True when this call released it;
-- false when there was nothing to release: already released, never reserved, or settled (spent money stays spent).
create function public.release_budget(
  p_task_id uuid,
  p_step_id text,
  p_now timestamptz default now()
) returns boolean
language plpgsql as $$
declare
  v_row public.budget_reservations;
begin
  update public.budget_reservations r
     set status = 'released', released_at = coalesce(p_now, now())
   where r.task_id = p_task_id and r.step_id = p_step_id and r.status = 'reserved'
  returning r.* into v_row;
  if not found then
    return false;
  end if;

  update public.budget_windows w
     set reserved_micros = w.reserved_micros - v_row.reserved_micros,
         updated_at = coalesce(p_now, now())
   where w.agent_id = v_row.agent_id and w.window_start = v_row.window_start;
  return true;
end $$;

-- Gives back every reservation of a task that is still open — for a run that failed for good (or was cancelled)
-- between a reserve and its settle or release. Settled spend stays. Returns how many were released.
create function public.release_task_budget(
  p_task_id uuid,
  p_now timestamptz default now()
) returns integer
language sql as $$
  with released as (
    update public.budget_reservations r
       set status = 'released', released_at = coalesce(p_now, now())
     where r.task_id = p_task_id and r.status = 'reserved'
    returning r.agent_id, r.window_start, r.reserved_micros
  ), per_window as (
    select agent_id, window_start, sum(reserved_micros)::bigint as micros, count(*)::integer as n
      from released group by agent_id, window_start
  ), refunded as (
    update public.budget_windows w
       set reserved_micros = w.reserved_micros - p.micros, updated_at = coalesce(p_now, now())
      from per_window p
     where w.agent_id = p.agent_id and w.window_start = p.window_start
    returning 1
  )
  select coalesce(sum(n), 0)::integer from per_window
$$;

-- Records "agent X has used up its budget for <day>" once per agent per window: true for the first call of the day,
-- false for every later one (also under concurrency: the unique dedupe key decides).
create function public.note_budget_exhausted(
  p_agent_id text,
  p_task_id uuid,
  p_window date,
  p_next_window_at timestamptz default null,
  p_payload jsonb default null,
  p_now timestamptz default now()
) returns boolean
language plpgsql as $$
declare
  v_agent public.agents;
begin
  select * into v_agent from public.agents a where a.id = p_agent_id;
  if not found then
    raise exception 'note_budget_exhausted: unknown agent %', p_agent_id using errcode = 'NSB01';
  end if;
  if p_window is null then
    raise exception 'note_budget_exhausted: the window is required' using errcode = '22023';
  end if;

  insert into public.notifications (kind, dedupe_key, agent_id, task_id, title, body, payload, created_at)
  values (
    'budget_exhausted',
    format('budget_exhausted:%s:%s', v_agent.id, p_window),
    v_agent.id,
    p_task_id,
    format('%s agent reached its daily budget', v_agent.display_name),
    format('The %s agent has committed its $%s budget for %s (%s). Its work waits%s.',
      v_agent.display_name,
      to_char(v_agent.daily_budget_micros / 1000000.0, 'FM999999990.00'),
      p_window, v_agent.budget_timezone,
      case when p_next_window_at is null then ' for the next budget window'
           else format(' until %s', to_char(p_next_window_at at time zone v_agent.budget_timezone,
                                            'YYYY-MM-DD HH24:MI') || ' ' || v_agent.budget_timezone) end),
    jsonb_build_object(
      'agent_id', v_agent.id,
      'task_id', p_task_id,
      'window_start', p_window,
      'cap_micros', v_agent.daily_budget_micros,
      'budget_timezone', v_agent.budget_timezone,
      'next_window_at', p_next_window_at
    ) || coalesce(p_payload, '{}'::jsonb),
    coalesce(p_now, now())
  )
  on conflict (dedupe_key) do nothing;
  return found;
end $$;

-- Spend per agent per window (the O(1) counters), with the ledger's token totals. committed = in flight + settled.
-- cap_micros is the cap in force at the window's last reservation. Every argument is an optional filter.
create function public.spend_by_agent_day(
  p_agent_id text default null,
  p_from date default null,
  p_to date default null
) returns table (
  agent_id text,
  window_start date,
  settled_micros bigint,
  reserved_micros bigint,
  committed_micros bigint,
  cap_micros bigint,
  reservations integer,
  settlements integer,
  input_tokens bigint,
  output_tokens bigint,
  cache_creation_input_tokens bigint,
  cache_read_input_tokens bigint
)
language sql stable as $$
  select w.agent_id, w.window_start, w.settled_micros, w.reserved_micros, w.reserved_micros + w.settled_micros,
         w.cap_micros, w.reservations, w.settlements,
         coalesce(t.input_tokens, 0), coalesce(t.output_tokens, 0),
         coalesce(t.cache_creation_input_tokens, 0), coalesce(t.cache_read_input_tokens, 0)
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

-- Spend of one task: settled actuals, what is still reserved in flight, calls and tokens.
create function public.spend_by_task(p_task_id uuid)
returns table (
  task_id uuid,
  agent_id text,
  settled_micros bigint,
  reserved_micros bigint,
  calls integer,
  input_tokens bigint,
  output_tokens bigint,
  cache_creation_input_tokens bigint,
  cache_read_input_tokens bigint
)
language sql stable as $$
  select r.task_id, min(r.agent_id),
         coalesce(sum(r.actual_micros) filter (where r.status = 'settled'), 0)::bigint,
         coalesce(sum(r.reserved_micros) filter (where r.status = 'reserved'), 0)::bigint,
         (count(*) filter (where r.status = 'settled'))::integer,
         coalesce(sum(r.input_tokens), 0)::bigint, coalesce(sum(r.output_tokens), 0)::bigint,
         coalesce(sum(r.cache_creation_input_tokens), 0)::bigint, coalesce(sum(r.cache_read_input_tokens), 0)::bigint
    from public.budget_reservations r
   where r.task_id = p_task_id and r.status <> 'released'
   group by r.task_id
$$;

-- Spend per model over windows [p_from, p_to], optionally for one agent or one task.
create function public.spend_by_model(
  p_from date default null,
  p_to date default null,
  p_agent_id text default null,
  p_task_id uuid default null
) returns table (
  model text,
  settled_micros bigint,
  reserved_micros bigint,
  calls integer,
  input_tokens bigint,
  output_tokens bigint,
  cache_creation_input_tokens bigint,
  cache_read_input_tokens bigint
)
language sql stable as $$
  select r.model,
         coalesce(sum(r.actual_micros) filter (where r.status = 'settled'), 0)::bigint,
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

-- As in the foundation: functions are executable by PUBLIC by default, which PostgREST would expose to anon.
-- Only the server may call them.
revoke execute on all functions in schema public from public, anon, authenticated;
grant execute on all functions in schema public to service_role;
