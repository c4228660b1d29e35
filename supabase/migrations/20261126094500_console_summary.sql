-- The morning summary's money figure in one statement (the console used to page through every settled row), and
-- the indexes that keep the summary flat as the ledger and the task table grow.
create index budget_reservations_settled_at on public.budget_reservations (settled_at)
  include (actual_micros) where status = 'settled';
create index tasks_status_finished on public.tasks (status, finished_at);

-- Settled spend (micro-dollars) of every agent since a moment.
create function public.settled_spend_since(p_since timestamptz)
returns bigint language sql stable as $$
  select coalesce(sum(r.actual_micros), 0)::bigint
    from public.budget_reservations r
   where r.status = 'settled' and r.settled_at >= p_since
$$;

revoke execute on all functions in schema public from public, anon, authenticated;
grant execute on all functions in schema public to service_role;
