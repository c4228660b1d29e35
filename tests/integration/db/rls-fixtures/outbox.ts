// Fixture row for the outbox (a pending start event of the foundation fixture task).
import { sql } from "../sql";

export async function insertFixtures(url: string): Promise<void> {
  await sql(
    url,
    `insert into public.outbox (event_id, name, data)
     values ('task-run-00000000-0000-4000-8000-00000000f001', 'task/run.requested',
             '{"task_id": "00000000-0000-4000-8000-00000000f001", "agent": "research"}')`,
  );
}
