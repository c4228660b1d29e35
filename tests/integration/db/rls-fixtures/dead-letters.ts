// Fixture rows for the failure tables (dead_letters, breakers, research_cache, web_page_cache), made through their own functions: a task of its own
// failed into the dead-letter queue, and a breaker with one failure counted.
import { sql } from "../sql";

export async function insertFixtures(url: string): Promise<void> {
  const [t] = await sql<{ id: string }>(
    url,
    `insert into public.tasks (id, agent_id, prompt, status) values ('00000000-0000-4000-8000-00000000d001', 'research', 'rls fixture failure', 'running') returning id`,
  );
  await sql(url, `select * from public.fail_task_dead_letter($1, 'provider_down', 'Claude had a server error (500).', '{"kind":"provider_down"}'::jsonb, 'rls fixture', 5)`, [t!.id]);
  await sql(url, `select * from public.breaker_record('claude:rls-fixture', false, true, 'Claude had a server error (500).', now(), 5, 60, 1800)`);
  await insertDegradationFixtures(url);
}

// Degradation (20261129120200_degradation.sql): a cached research result and a cached page.
export async function insertDegradationFixtures(url: string): Promise<void> {
  await sql(url, `insert into public.research_cache (topic_key, topic, text) values ('rls fixture topic', 'rls fixture topic', 'rls fixture research')`);
  await sql(url, `insert into public.web_page_cache (url, final_url, status, text) values ('https://rls.example/', 'https://rls.example/', 200, 'rls fixture page')`);
}
