-- How many bytes a task's big fields take on the wire (prompt, input, result, error, status_reason), as a PostgREST
-- computed field (`select=id,task_wire_bytes`): the task list reads it first and fills a page only up to a byte
-- budget (lib/tasks/service.ts), so that a page of 100 tasks carrying ~256 KB inputs is not a 25 MB answer built in
-- the app's memory — 20 such lists in parallel took next-server from 0.5 to 1.8 GB.
create function public.task_wire_bytes(t public.tasks)
returns bigint
language sql
stable
set search_path = ''
as $$
  select coalesce(octet_length(t.prompt), 0)::bigint
       + coalesce(octet_length(t.input::text), 0)
       + coalesce(octet_length(t.result::text), 0)
       + coalesce(octet_length(t.error::text), 0)
       + coalesce(octet_length(t.status_reason), 0)
$$;

revoke execute on function public.task_wire_bytes(public.tasks) from public, anon, authenticated;
grant execute on function public.task_wire_bytes(public.tasks) to service_role;
