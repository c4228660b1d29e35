-- A lost call is charged at its reservation, the upper bound of what it can have cost (issue 13, crash sweep).
--
-- A call whose outcome is unknown (the process died while it was in flight, or its answer could not be read) was
-- most likely billed, and nobody can ask the provider what it produced. It used to be charged at the counted input
-- plus the agent's MEAN output: right on average, but a lost call that wrote more than the mean was under-counted
-- (bench:crash-sweep: 2 of 6 tasks under-counted, by up to 1,560 µ$ each). The ledger must never under-count spend,
-- so the estimate is now the call's reservation — its worst case (every input token at the dearest input rate,
-- max_tokens of output, the web searches it may make), which no bill can exceed. The over-count is at most that
-- estimate minus what the call really cost, and it is marked `estimated` (shown apart in the task and in
-- GET /api/spend). The recorded tokens stay the best guess (counted input, expected output) for the reports; lost
-- calls are never used to learn an agent's expected output.
create or replace function public.write_off_lost_calls(
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
    -- The upper bound (it covers the input cost too).
    v_amount := v_row.reserved_micros;

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

revoke execute on all functions in schema public from public, anon, authenticated;
grant execute on all functions in schema public to service_role;
