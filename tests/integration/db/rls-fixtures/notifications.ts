// Fixture rows for notification_deliveries (and another notification), made through the notification functions
// themselves on the foundation's fixture task: one channel sent, one failed.
import { sql } from "../sql";

const TASK = "00000000-0000-4000-8000-00000000f001";

export async function insertFixtures(url: string): Promise<void> {
  const [n] = await sql<{ notification_id: string }>(
    url,
    `select notification_id from public.record_notification('task_finished', 'task_finished:rls-fixture',
       'Research finished', 'rls fixture', 'research', $1::uuid, $2, null, now())`,
    [TASK, `/tasks/${TASK}`],
  );
  const id = n!.notification_id;
  await sql(url, `select * from public.claim_notification_delivery($1, 'slack', 60, now())`, [id]);
  await sql(url, `select public.complete_notification_delivery($1, 'slack', null, 200, now())`, [id]);
  await sql(url, `select public.fail_notification_delivery($1, 'telegram', 'Telegram answered 400: chat not found')`, [id]);
  await sql(url, `select * from public.finish_notification($1)`, [id]);
}
