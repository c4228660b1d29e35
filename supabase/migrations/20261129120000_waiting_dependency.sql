-- A task whose upstream dependency (Claude, a host behind web_fetch, ...) is behind an open circuit breaker waits
-- for the breaker's next probe instead of burning its retries. Its own migration: a new enum value cannot be used
-- in the transaction that adds it.
alter type public.task_status add value if not exists 'waiting_dependency';
