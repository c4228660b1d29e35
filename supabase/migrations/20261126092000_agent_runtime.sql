-- Agent runtime: which tools each agent may use and whether its output needs a human's approval, as data, so an
-- operator changes them without a deploy (like the budgets and limits already on the row).
alter table public.agents
  add column tools text[] not null default '{}'
    check (tools <@ array['web_fetch', 'save_artifact', 'send_email']::text[]),
  add column requires_approval boolean not null default false,
  add column approval_timeout_seconds integer not null default 86400
    check (approval_timeout_seconds between 60 and 604800),
  add column approval_auto_action text not null default 'reject'
    check (approval_auto_action in ('reject', 'approve'));

-- The seeded agents get the mission's roles: research scrapes and analyzes, content writes (and every draft
-- is reviewed), outreach emails. Only rows still at the defaults are touched, so an operator's edits stay.
update public.agents set tools = array['web_fetch', 'save_artifact'] where id = 'research' and tools = '{}';
update public.agents set tools = array['save_artifact'], requires_approval = true where id = 'content' and tools = '{}';
update public.agents set tools = array['send_email'] where id = 'outreach' and tools = '{}';
