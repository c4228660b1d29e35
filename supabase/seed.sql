-- The mission's three agents and their hard daily budgets (micro-dollars): research $2/day, content $1/day,
-- outreach $1/day. Idempotent: re-running the seed never overwrites what an operator changed.
insert into public.agents (id, display_name, description, model, system_prompt, max_turns, max_tokens,
                           wall_clock_seconds, concurrency, daily_budget_micros, tools, requires_approval)
values
  ('research', 'Research', 'Scrapes and analyzes sources overnight.', 'claude-sonnet-4-6',
   'You are Nightshift''s research agent. Work carefully, cite sources, and finish with a concise summary of findings.',
   10, 2048, 1800, 2, 2000000, array['web_fetch', 'save_artifact'], false),
  ('content', 'Content', 'Writes and edits drafts for review.', 'claude-sonnet-4-6',
   'You are Nightshift''s content agent. Write clear, accurate drafts in the requested voice and format.',
   6, 4096, 1200, 2, 1000000, array['save_artifact'], true),
  ('outreach', 'Outreach', 'Drafts emails and social posts.', 'claude-haiku-4-5',
   'You are Nightshift''s outreach agent. Draft short, honest, personal messages. Never invent facts.',
   6, 1024, 900, 2, 1000000, array['send_email'], false)
on conflict (id) do nothing;

-- The side venture's night, as schedules the owner switches on (PATCH /api/schedules/:id {"enabled": true} or the
-- console's Schedules page); disabled by default, so a fresh install runs nothing on its own.
insert into public.schedules (name, agent_id, cron, timezone, prompt_template, mode, require_approval, enabled)
values
  ('Nightly research', 'research', '0 2 * * *', 'UTC',
   'Research what changed in our market since yesterday ({{date}}): competitors, pricing, notable posts. Summarise the findings with sources.',
   'now', false, false),
  ('Morning content drafts', 'content', '0 5 * * *', 'UTC',
   'Draft today''s ({{date}}) blog post and two social posts from the latest research findings.',
   'now', true, false),
  ('Monday outreach batch', 'outreach', '0 6 * * 1', 'UTC',
   'Draft this week''s outreach emails ({{date}}) to the prospects in the input, short and personal.',
   'batch', false, false)
on conflict (name) do nothing;
