-- outbox_record as PL/pgSQL (was LANGUAGE sql). Before PostgreSQL 18 a SQL-language function's statement is parsed,
-- analysed and planned again on every call from another function (its plan lives only as long as the calling
-- statement's executor state), and every recording function calls it — submit_task once per POST /api/tasks, in the
-- same transaction as the task. A PL/pgSQL function keeps its statement's plan for the session, so the insert is
-- planned once per connection (PostgREST keeps its connections). Same signature, same effect: a repeat of an event id
-- records nothing.
create or replace function public.outbox_record(p_name text, p_data jsonb, p_event_id text)
returns void language plpgsql set search_path = '' as $$
begin
  insert into public.outbox (event_id, name, data) values (p_event_id, p_name, p_data)
  on conflict (event_id) do nothing;
end $$;

revoke execute on function public.outbox_record(text, jsonb, text) from public, anon, authenticated;
grant execute on function public.outbox_record(text, jsonb, text) to service_role;
