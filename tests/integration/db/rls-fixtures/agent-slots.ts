// Fixture row for agent_slots (holds the foundation fixture task's slot).
import { sql } from "../sql";

export async function insertFixtures(url: string): Promise<void> {
  await sql(
    url,
    `insert into public.agent_slots (task_id, agent_id, acquired_at, lease_until)
     values ('00000000-0000-4000-8000-00000000f001', 'research', now(), now() + interval '1 hour')`,
  );
}
