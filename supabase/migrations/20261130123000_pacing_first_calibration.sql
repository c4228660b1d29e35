-- A model's first calibration starts from the provider's remaining figures, not from an empty bucket (issue 13).
--
-- A model with no limits known is not paced; its first answers bring the anthropic-ratelimit-* headers that set them.
-- settle_rate_limit refilled the row before learning the limits, so a bucket whose limit was unknown held 0 and the
-- first calibration left it (nearly) empty although the provider reported plenty left: every call after it waited up
-- to a minute for tokens that were there (bench:night: 60 paced waits in a run the provider never limited). Now a
-- limit learned for the first time starts at the provider's remaining figure (or the full limit without one); a known
-- limit keeps the old rule (ours, corrected by the call, capped by the provider's remaining).
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
  new_req boolean;
  new_in  boolean;
  new_out boolean;
begin
  select * into v from public.rate_limits r where r.model = p_model for update;
  if not found then
    if not v_cal then return; end if;
    insert into public.rate_limits (model) values (p_model) on conflict (model) do nothing;
    select * into v from public.rate_limits r where r.model = p_model for update;
  end if;
  v := public.rate_limit_refill(v, v_now);
  new_req := v.requests_per_minute is null and p_requests_limit is not null;
  new_in := v.input_tokens_per_minute is null and p_input_limit is not null;
  new_out := v.output_tokens_per_minute is null and p_output_limit is not null;
  if v_cal then
    v.requests_per_minute := coalesce(p_requests_limit, v.requests_per_minute);
    v.input_tokens_per_minute := coalesce(p_input_limit, v.input_tokens_per_minute);
    v.output_tokens_per_minute := coalesce(p_output_limit, v.output_tokens_per_minute);
  end if;
  -- A charge is bounded by a minute's limit (a bucket is never more than one minute in debt).
  if v.input_tokens_per_minute is not null and not new_in then
    v.input_available := greatest(v.input_available + coalesce(p_refund_input, 0), v.input_available - v.input_tokens_per_minute);
  end if;
  if v.output_tokens_per_minute is not null and not new_out then
    v.output_available := greatest(v.output_available + coalesce(p_refund_output, 0), v.output_available - v.output_tokens_per_minute);
  end if;
  if new_req then v.requests_available := coalesce(p_requests_remaining, v.requests_per_minute); end if;
  if new_in then v.input_available := coalesce(p_input_remaining, v.input_tokens_per_minute); end if;
  if new_out then v.output_available := coalesce(p_output_remaining, v.output_tokens_per_minute); end if;
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
