// Fixture rows for the approvals table, made through the approval functions themselves on the foundation's
// fixture task: one decided approval and one still pending.
import { sql } from "../sql";

const TASK = "00000000-0000-4000-8000-00000000f001";

export async function insertFixtures(url: string): Promise<void> {
  const [a] = await sql<{ id: string }>(
    url,
    `select id from public.request_approval($1, 'draft', 1, '{"text":"rls fixture draft"}'::jsonb, 86400, 'reject', now())`,
    [TASK],
  );
  await sql(url, `select public.publish_approval($1, now())`, [a!.id]);
  await sql(url, `select * from public.decide_approval($1, 'approve', null, 'rls-fixture', 'api', now())`, [a!.id]);
  await sql(url, `select id from public.request_approval($1, 'draft', 2, '{"text":"rls fixture revision"}'::jsonb, 86400, 'reject', now())`, [
    TASK,
  ]);
}
