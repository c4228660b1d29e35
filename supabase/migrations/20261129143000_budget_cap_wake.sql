-- A raised cap wakes the agent's tasks waiting for money (issue 13), however it was raised — SQL, PATCH /api/agents
-- or the console: the trigger records budget/agent.freed in the submission outbox in the same transaction as the
-- raise, and the relay sends it. Each waiting task then asks the budget again (the event is only a wake-up).
create function public.agents_budget_raised() returns trigger
language plpgsql set search_path = '' as $$
begin
  if new.daily_budget_micros > old.daily_budget_micros
     and exists (select 1 from public.tasks t where t.agent_id = new.id and t.status = 'waiting_budget') then
    perform public.outbox_record(
      'budget/agent.freed',
      jsonb_build_object('agent_id', new.id, 'reason', 'cap_raised'),
      format('budget-freed-%s-cap-%s', new.id, pg_catalog.txid_current()));
  end if;
  return new;
end $$;

create trigger agents_budget_raised after update of daily_budget_micros on public.agents
  for each row execute function public.agents_budget_raised();

revoke execute on all functions in schema public from public, anon, authenticated;
grant execute on all functions in schema public to service_role;
