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
