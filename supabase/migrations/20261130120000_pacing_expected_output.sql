-- Output tokens are paced on what a call is expected to produce, not on its max_tokens (issue 13).
--
-- Anthropic evaluates OTPM in real time as output tokens are produced, counting only the tokens generated;
-- max_tokens does not factor in (docs: "Rate limits", OTPM). Charging each call's whole max_tokens until it ended
-- held the output bucket for calls that use a tenth of it, so a night ran at a fraction of the rate limit.
-- Now a call is admitted on its expected output — what this agent's calls on this model produced lately — and the
-- answer's real usage corrects the bucket at once: unused tokens go back, tokens beyond the expectation are charged
-- (the bucket may go below zero, and later calls wait until it has refilled). Input tokens are counted before the
-- call (count_tokens), as the API estimates them at request time.
--
--   expected_output_tokens   the expectation: the mean output of the agent's last 50 real calls of the model
--                            (of every agent's, for an agent new to the model; a quarter of max_tokens without any
--                            history), within [1, max_tokens]
--   settle_rate_limit        now takes signed corrections (a negative refund is a charge)

-- The history read by expected_output_tokens (and write_off_lost_calls): the latest real settlements of an agent and
-- model.
create index budget_reservations_history on public.budget_reservations (agent_id, model, settled_at desc)
  where status = 'settled' and not estimated;

create function public.expected_output_tokens(p_agent_id text, p_model text, p_max_tokens integer)
returns integer
language plpgsql stable set search_path = '' as $$
declare
  v_max integer := greatest(coalesce(p_max_tokens, 1), 1);
  v_mean numeric;
begin
  select avg(h.output_tokens) into v_mean
    from (select r.output_tokens from public.budget_reservations r
           where r.agent_id = p_agent_id and r.model = p_model and r.status = 'settled' and not r.estimated
           order by r.settled_at desc limit 50) h;
  if v_mean is null then
    -- A new agent on the model: what the model's calls of every agent produced lately.
    select avg(h.output_tokens) into v_mean
      from (select r.output_tokens from public.budget_reservations r
             where r.model = p_model and r.status = 'settled' and not r.estimated
             order by r.settled_at desc limit 50) h;
  end if;
  -- No history at all: a quarter of max_tokens (the answer corrects it; a bucket is never more than a minute in debt).
  return greatest(1, least(v_max, coalesce(ceil(v_mean)::integer, ceil(v_max / 4.0)::integer)));
end $$;

create index budget_reservations_model_history on public.budget_reservations (model, settled_at desc)
  where status = 'settled' and not estimated;

-- After an answer: correct the buckets by what the call really used against what was taken (positive: give back;
-- negative: charge the excess), then calibrate from the answer's headers. The provider's remaining figures cap
-- ours (it also counts other clients of the key).
create or replace function public.settle_rate_limit(
  p_model text,
  p_refund_input integer,
  p_refund_output integer,
  p_requests_limit integer default null,
  p_requests_remaining integer default null,
  p_input_limit integer default null,
  p_input_remaining integer default null,
  p_output_limit integer default null,
  p_output_remaining integer default null,
  p_now timestamptz default now()
) returns void
language plpgsql set search_path = '' as $$
declare
  v     public.rate_limits;
  v_now timestamptz := coalesce(p_now, now());
  v_cal boolean := coalesce(p_requests_limit, p_input_limit, p_output_limit) is not null;
begin
  select * into v from public.rate_limits r where r.model = p_model for update;
  if not found then
    if not v_cal then return; end if;
    insert into public.rate_limits (model) values (p_model) on conflict (model) do nothing;
    select * into v from public.rate_limits r where r.model = p_model for update;
  end if;
  v := public.rate_limit_refill(v, v_now);
  if v_cal then
    v.requests_per_minute := coalesce(p_requests_limit, v.requests_per_minute);
    v.input_tokens_per_minute := coalesce(p_input_limit, v.input_tokens_per_minute);
    v.output_tokens_per_minute := coalesce(p_output_limit, v.output_tokens_per_minute);
  end if;
  -- A charge is bounded by a minute's limit (a bucket is never more than one minute in debt).
  if v.input_tokens_per_minute is not null then
    v.input_available := greatest(v.input_available + coalesce(p_refund_input, 0), v.input_available - v.input_tokens_per_minute);
  end if;
  if v.output_tokens_per_minute is not null then
    v.output_available := greatest(v.output_available + coalesce(p_refund_output, 0), v.output_available - v.output_tokens_per_minute);
  end if;
  v.requests_available := least(v.requests_available, coalesce(p_requests_remaining, v.requests_available), coalesce(v.requests_per_minute, 0));
  v.input_available := least(v.input_available, coalesce(p_input_remaining, v.input_available), coalesce(v.input_tokens_per_minute, 0));
  v.output_available := least(v.output_available, coalesce(p_output_remaining, v.output_available), coalesce(v.output_tokens_per_minute, 0));
  update public.rate_limits r
     set requests_per_minute = v.requests_per_minute, input_tokens_per_minute = v.input_tokens_per_minute,
         output_tokens_per_minute = v.output_tokens_per_minute,
         requests_available = v.requests_available, input_available = v.input_available,
         output_available = v.output_available, refreshed_at = v.refreshed_at,
         source = case when v_cal then 'headers' else r.source end,
         calibrated_at = case when v_cal then v_now else r.calibrated_at end,
         updated_at = v_now
   where r.model = p_model;
end $$;

revoke execute on all functions in schema public from public, anon, authenticated;
grant execute on all functions in schema public to service_role;
