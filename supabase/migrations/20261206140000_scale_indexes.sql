-- Indexes for a database that has seen months of nights (bench/scale.ts measures every hot and user-facing query
-- at 200k tasks over 60 days; docs/benchmarks.md). Each one serves a query that otherwise read a table that grows
-- without bound, or sorted all of it:
--   approvals_visible_requested  GET /api/approvals newest first (and its cursor): an index on (requested_at desc,
--                                id desc) over the visible approvals, so a page reads a page instead of every
--                                visible approval and a sort.
--   approvals_status_requested   the same list filtered by status (approved, rejected, expired, …).
--   tasks_finished               the morning digest: the tasks that ended in the night, by finished_at, whatever
--                                their status (tasks_status_finished leads with status).
create index approvals_visible_requested on public.approvals (requested_at desc, id desc) where visible_at is not null;
create index approvals_status_requested on public.approvals (status, requested_at desc, id desc) where visible_at is not null;
create index tasks_finished on public.tasks (finished_at) where finished_at is not null;

-- spend_by_model (GET /api/spend, the console's spend chart) read the whole ledger whatever the range: every filter
-- was written `(p_x is null or col = p_x)`, which no index can serve, so a 14-day chart scanned every reservation
-- ever made. The same answer, with the range as plain bounds (budget_reservations_window) and one task's spend
-- through its own index (budget_reservations_step).
create or replace function public.spend_by_model(
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
language plpgsql stable set search_path = '' as $$
begin
  if p_task_id is not null then
    return query
    select r.model,
           coalesce(sum(r.actual_micros) filter (where r.status = 'settled'), 0)::bigint,
           coalesce(sum(r.actual_micros) filter (where r.status = 'settled' and r.estimated), 0)::bigint,
           coalesce(sum(r.reserved_micros) filter (where r.status = 'reserved'), 0)::bigint,
           (count(*) filter (where r.status = 'settled'))::integer,
           coalesce(sum(r.input_tokens), 0)::bigint, coalesce(sum(r.output_tokens), 0)::bigint,
           coalesce(sum(r.cache_creation_input_tokens), 0)::bigint, coalesce(sum(r.cache_read_input_tokens), 0)::bigint
      from public.budget_reservations r
     where r.task_id = p_task_id and r.status <> 'released'
       and (p_from is null or r.window_start >= p_from)
       and (p_to is null or r.window_start <= p_to)
       and (p_agent_id is null or r.agent_id = p_agent_id)
     group by r.model
     order by 2 desc, r.model;
    return;
  end if;
  return query
  select r.model,
         coalesce(sum(r.actual_micros) filter (where r.status = 'settled'), 0)::bigint,
         coalesce(sum(r.actual_micros) filter (where r.status = 'settled' and r.estimated), 0)::bigint,
         coalesce(sum(r.reserved_micros) filter (where r.status = 'reserved'), 0)::bigint,
         (count(*) filter (where r.status = 'settled'))::integer,
         coalesce(sum(r.input_tokens), 0)::bigint, coalesce(sum(r.output_tokens), 0)::bigint,
         coalesce(sum(r.cache_creation_input_tokens), 0)::bigint, coalesce(sum(r.cache_read_input_tokens), 0)::bigint
    from public.budget_reservations r
   where r.window_start >= coalesce(p_from, '-infinity'::date)
     and r.window_start <= coalesce(p_to, 'infinity'::date)
     and r.status <> 'released'
     and (p_agent_id is null or r.agent_id = p_agent_id)
   group by r.model
   order by 2 desc, r.model;
end $$;
