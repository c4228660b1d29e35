// Fixture rows for the failure tables (dead_letters, breakers), made through their own functions: a task of its own
// failed into the dead-letter queue, and a breaker with one failure counted.
import { sql } from "../sql";

export async function insertFixtures(url: string): Promise<void> {
  const [t] = await sql<{ id: string }>(
    url,
    `insert into public.tasks (id, agent_id, prompt, status) values ('00000000-0000-4000-8000-00000000d001', 'research', 'rls fixture failure', 'running') returning id`,
  );
  await sql(url, `select * from public.fail_task_dead_letter($1, 'provider_down', 'Claude had a server error (500).', '{"kind":"provider_down"}'::jsonb, 'rls fixture', 5)`, [t!.id]);
  await sql(url, `select * from public.breaker_record('claude:rls-fixture', false, true, 'Claude had a server error (500).', now(), 5, 60, 1800)`);
}
