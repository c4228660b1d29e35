-- Pacing: what admission takes from the output bucket for a call of an agent whose own answers have not yet
-- calibrated it. expected_output_tokens (20261130120000) falls back to every agent's mean on the model, then to a
-- quarter of max_tokens; for admission that guess was wrong by a factor of 4–9 at the start of a night: content
-- drafts (~800–1,100 output tokens) were admitted at research's mean (~120) while the first minute's full buckets let
-- the backfill admit dozens at once, and the provider's output bucket went thousands of tokens below zero — 14 of a
-- quiet night's 15 429s came in its first 24 s (bench:night trace, docs/benchmarks.md, session 5).
--
-- Admission now takes the agent's own mean over its last 50 real calls of the model once it has at least 3, and
-- max_tokens (the worst case) before that. The settlement gives back what the answer did not use, so the worst case
-- costs only the first seconds of a new agent on a model, never capacity. expected_output_tokens is unchanged: it
-- stays the ledger's estimate for a lost call (issue 13: "the expected output"), where a worst case would overcharge.
create function public.admission_output_tokens(p_agent_id text, p_model text, p_max_tokens integer)
returns integer
language plpgsql stable set search_path = '' as $$
declare
  v_max integer := greatest(coalesce(p_max_tokens, 1), 1);
  v_mean numeric;
  v_n integer;
begin
  select avg(h.output_tokens), count(*) into v_mean, v_n
    from (select r.output_tokens from public.budget_reservations r
           where r.agent_id = p_agent_id and r.model = p_model and r.status = 'settled' and not r.estimated
           order by r.settled_at desc limit 50) h;
  if v_n < 3 or v_mean is null then
    return v_max;
  end if;
  return greatest(1, least(v_max, ceil(v_mean)::integer));
end $$;

revoke execute on function public.admission_output_tokens(text, text, integer) from public, anon, authenticated;
grant execute on function public.admission_output_tokens(text, text, integer) to service_role;
