-- Retention for bookkeeping that has done its job (docs/retention.md). The user's results — tasks, their steps,
-- artifacts, approvals, dead letters, the spend ledger — stay; these rows only record how work was carried:
--   outbox             rows sent more than the window ago (Inngest dedupes an event id for 24 h; the window keeps
--                      the outbox an audit trail of what was announced for a while after)
--   webhook_attempts   the per-attempt log of a callback/peer delivery that has finished (delivered or failed)
--   notifications      notifications (with their per-channel deliveries) older than the window: delivered, or
--                      given up by the sweeper (it stops after 48 h)
--   web_page_cache     pages fetched longer ago than the window (the cache serves nothing older than its TTL)
-- Every delete is one bounded batch (`p_limit` rows, oldest first, skip locked): the sweeper calls again while a
-- batch comes back full, so no statement holds locks on more than one batch.

-- outbox_prune, batched (it was one unbounded DELETE).
drop function public.outbox_prune(integer, timestamptz);
create function public.outbox_prune(p_keep_seconds integer, p_now timestamptz default now(), p_limit integer default 1000)
returns integer language plpgsql set search_path = '' as $$
declare
  v_count integer;
begin
  -- = any(array(…)): the batch's ids are looked up by key; with `in (subquery)` the planner hash-joins the batch
  -- against a scan of the whole table.
  delete from public.outbox o
   where o.id = any(array(select d.id from public.outbox d
                   where d.sent_at is not null
                     and d.sent_at < coalesce(p_now, now()) - make_interval(secs => greatest(p_keep_seconds, 0))
                   order by d.sent_at
                   limit greatest(1, least(coalesce(p_limit, 1000), 10000))
                     for update skip locked));
  get diagnostics v_count = row_count;
  return v_count;
end $$;
revoke execute on function public.outbox_prune(integer, timestamptz, integer) from public, anon, authenticated;
grant execute on function public.outbox_prune(integer, timestamptz, integer) to service_role;

create function public.prune_bookkeeping(p_kind text, p_keep_seconds integer, p_limit integer default 1000,
                                         p_now timestamptz default now())
returns integer language plpgsql set search_path = '' as $$
declare
  v_cutoff timestamptz := coalesce(p_now, now()) - make_interval(secs => greatest(p_keep_seconds, 0));
  v_limit  integer := greatest(1, least(coalesce(p_limit, 1000), 10000));
  v_count  integer;
begin
  if p_kind = 'webhook_attempts' then
    -- Walked by the attempt's own time (the deliveries stay, so walking them would re-read every old one on each
    -- sweep): attempts older than the window whose delivery has finished, and finished before the window too.
    delete from public.webhook_delivery_attempts a
     where a.ctid = any(array(
             select x.ctid
               from public.webhook_delivery_attempts x
               join public.webhook_deliveries d on d.id = x.delivery_id
              where x.at < v_cutoff and d.status <> 'pending' and d.finished_at < v_cutoff
              order by x.at
              limit v_limit
                for update of x skip locked));
  elsif p_kind = 'notifications' then
    delete from public.notifications n
     where n.id = any(array(select x.id from public.notifications x
                             where x.created_at < v_cutoff
                             order by x.created_at
                             limit v_limit
                               for update skip locked));
  elsif p_kind = 'web_page_cache' then
    delete from public.web_page_cache c
     where c.url = any(array(select x.url from public.web_page_cache x
                              where x.fetched_at < v_cutoff
                              order by x.fetched_at
                              limit v_limit
                                for update skip locked));
  else
    raise exception 'prune_bookkeeping: unknown kind %', p_kind using errcode = '22023';
  end if;
  get diagnostics v_count = row_count;
  return v_count;
end $$;
revoke execute on function public.prune_bookkeeping(text, integer, integer, timestamptz) from public, anon, authenticated;
grant execute on function public.prune_bookkeeping(text, integer, integer, timestamptz) to service_role;

-- What the batches walk, oldest first (outbox_sent on sent_at exists already). Each batch names its rows by key (or
-- ctid) in `= any(array(…))`, so the delete looks them up instead of joining the batch against the whole table.
create index webhook_delivery_attempts_at on public.webhook_delivery_attempts (at);
create index notifications_created on public.notifications (created_at);
create index web_page_cache_fetched on public.web_page_cache (fetched_at);
