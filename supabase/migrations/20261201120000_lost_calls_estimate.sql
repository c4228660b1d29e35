-- A lost call is charged as the issue specifies (issue 13): an ESTIMATE — the counted input plus the expected
-- output, marked `estimated`, never less than the input cost.
--
-- Session 3 charged a lost call at its reservation (the worst case: max_tokens of output at the dearest input rate
-- plus the web searches it may make), which never under-counts but over-counted the crash sweep by +116 % / +39 %
-- of what the provider billed. The issue asks for an estimate instead, the same one the rate limiter takes before
-- a call (expected_output_tokens: the agent's mean output on the model over its last 50 real calls, else the
-- model's mean over every agent, else a quarter of max_tokens). Priced at the model's input and output rates, so a
-- task's estimated cost is right on average; a single lost call that wrote more than the mean is under-counted by
-- at most (max_tokens − expected) × the output price, and one that wrote less is over-counted by the difference.
--
-- Bounds, per lost call: amount ≥ the input cost (p_input_micros: the counted input at the base input rate — an
-- input the provider read is billed whatever happened to the answer); amount ≤ the reservation whenever the input
-- cost is (so writing off never raises committed spend, and the cap holds without a new check). The cap counts the
-- estimate as settled spend (budget_windows.settled_micros and estimated_micros), the task shows it apart
-- (tasks.estimated_cost_micros), and lost calls never teach the expected output (history reads `not estimated`).
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

  -- Row locks on the turn's open reservations: two attempts of the same turn writing off at once charge each lost
  -- call once (the second waits, then finds it settled).
  for v_row in
    select * from public.budget_reservations r
     where r.task_id = p_task_id and (r.step_id = p_turn_id or r.step_id like p_turn_id || '#%') and r.status = 'reserved'
     order by r.reserved_at
     for update
  loop
    v_expected := public.expected_output_tokens(v_row.agent_id, v_row.model, p_max_tokens);
    v_amount := greatest(p_input_micros,
                         least(v_row.reserved_micros,
                               p_input_micros + ceil(v_expected::numeric * p_output_micros_per_mtok / 1000000)::bigint));

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
