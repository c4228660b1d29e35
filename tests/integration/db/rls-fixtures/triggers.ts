// Fixture rows for the trigger tables (webhook sources, refusals, deliveries and attempts; schedules and firings),
// made through their SQL functions where they have one.
import { sql } from "../sql";

export async function insertFixtures(url: string): Promise<void> {
  await sql(
    url,
    `insert into public.webhook_sources (name, agent_id, prompt_template, secret_env_names)
     values ('rls-fixture', 'research', 'Look into {{payload.topic}}', array['RLS_FIXTURE_SECRET'])`,
  );
  await sql(url, `select public.note_webhook_refusal('rls-fixture', 'bad_signature')`);
  const [d] = await sql<{ id: string }>(
    url,
    `select id from public.open_webhook_delivery('msg_rls_fixture', null, 'callback', 'task.finished', 'https://example.com/hook', '{}')`,
  );
  await sql(url, `select * from public.record_webhook_attempt($1, 1, 'delivered', 204, null, 12)`, [d!.id]);
  const [s] = await sql<{ id: string; next_run_at: string }>(
    url,
    `insert into public.schedules (name, agent_id, cron, timezone, prompt_template, next_run_at)
     values ('rls fixture', 'research', '0 2 * * *', 'UTC', 'Nightly research for {{date}}', '2030-01-01T02:00:00Z')
     returning id, next_run_at`,
  );
  await sql(url, `select * from public.fire_schedule($1, $2, $2, '2030-01-02T02:00:00Z', 0, null, 'Nightly research', repeat('c', 64))`, [
    s!.id,
    s!.next_run_at,
  ]);
}
