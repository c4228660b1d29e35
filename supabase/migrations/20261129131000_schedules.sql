-- Schedules as data (lib/schedules/). One Inngest cron function runs every minute and fires the schedules whose
-- next_run_at has come. The cron math (expressions, IANA time zones, daylight saving) is done by croner in the app;
-- what must hold under concurrency is decided here by fire_schedule: compare-and-set on next_run_at, so of two
-- dispatchers that overlap exactly one fires a given firing, and a retried firing finds its recorded task.

create table public.schedules (
  id                 uuid primary key default gen_random_uuid(),
  name               text not null unique check (length(name) between 1 and 100),
  agent_id           text not null references public.agents(id),
  cron               text not null check (length(cron) between 9 and 200),
  timezone           text not null default 'UTC' check (length(timezone) between 1 and 64),
  -- The task's prompt; `{{date}}` (the firing's local date) and `{{scheduled_for}}` (ISO, UTC) are filled in.
  prompt_template    text not null check (length(prompt_template) between 1 and 20000),
  input              jsonb,
  mode               public.task_mode not null default 'now',
  require_approval   boolean not null default false,
  enabled            boolean not null default true,
  -- Null while disabled; set by the app (croner) when a schedule is created or enabled.
  next_run_at        timestamptz,
  last_run_at        timestamptz,
  last_scheduled_for timestamptz,
  last_task_id       uuid references public.tasks(id) on delete set null,
  -- Firings missed while nothing ran (downtime) and folded into one catch-up firing.
  skipped_total      integer not null default 0,
  created_at         timestamptz not null default now(),
  updated_at         timestamptz not null default now(),
  check (not enabled or next_run_at is not null)
);
create index schedules_due on public.schedules (next_run_at) where enabled;

create trigger schedules_touch before update on public.schedules
  for each row execute function public.touch_updated_at();

-- One row per firing: the task it made and what it skipped (a catch-up after downtime runs once).
create table public.schedule_firings (
  schedule_id    uuid not null references public.schedules(id) on delete cascade,
  scheduled_for  timestamptz not null,
  task_id        uuid references public.tasks(id) on delete set null,
  skipped        integer not null default 0 check (skipped >= 0),
  skipped_from   timestamptz,
  fired_at       timestamptz not null default now(),
  primary key (schedule_id, scheduled_for)
);

alter table public.schedules enable row level security;
alter table public.schedule_firings enable row level security;

-- Fires one firing of a schedule, in one transaction: moves next_run_at from the value the dispatcher read
-- (compare-and-set) to the next one, creates the task (idempotency key `schedule:<id>:<scheduled_for>`) and
-- records the firing. outcome: 'created' (this call fired it), 'replayed' (this firing was fired already: its
-- task), 'not_due' (another dispatcher moved the schedule on, or it was disabled or edited meanwhile).
create function public.fire_schedule(
  p_schedule_id uuid,
  p_expected_next timestamptz,
  p_scheduled_for timestamptz,
  p_next_run_at timestamptz,
  p_skipped integer,
  p_skipped_from timestamptz,
  p_prompt text,
  p_request_hash text
) returns table (outcome text, task_id uuid, agent_id text)
language plpgsql set search_path = '' as $$
declare
  v_s public.schedules;
  v_task uuid;
begin
  select f.task_id into v_task from public.schedule_firings f
   where f.schedule_id = p_schedule_id and f.scheduled_for = p_scheduled_for;
  if found then
    return query select 'replayed'::text, v_task, (select s.agent_id from public.schedules s where s.id = p_schedule_id);
    return;
  end if;

  update public.schedules s
     set next_run_at = p_next_run_at,
         last_run_at = now(),
         last_scheduled_for = p_scheduled_for,
         skipped_total = s.skipped_total + greatest(p_skipped, 0)
   where s.id = p_schedule_id and s.enabled and s.next_run_at = p_expected_next
  returning * into v_s;
  if not found then
    return query select 'not_due'::text, null::uuid, null::text;
    return;
  end if;

  select c.task_id into v_task
    from public.create_task(v_s.agent_id, p_prompt, v_s.input, 0::smallint, v_s.mode, v_s.require_approval, null, null,
                            'schedule:' || p_schedule_id::text || ':' ||
                              to_char(p_scheduled_for at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                            p_request_hash) c;

  insert into public.schedule_firings (schedule_id, scheduled_for, task_id, skipped, skipped_from)
  values (p_schedule_id, p_scheduled_for, v_task, greatest(p_skipped, 0), p_skipped_from);
  update public.schedules s set last_task_id = v_task where s.id = p_schedule_id;
  return query select 'created'::text, v_task, v_s.agent_id;
end $$;

revoke execute on all functions in schema public from public, anon, authenticated;
grant execute on all functions in schema public to service_role;
