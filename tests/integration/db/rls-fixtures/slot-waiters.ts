// Fixture row for agent_slot_waiters (the foundation fixture task waits in its agent's line).
import { sql } from "../sql";

export async function insertFixtures(url: string): Promise<void> {
  await sql(
    url,
    `insert into public.agent_slot_waiters (task_id, agent_id, priority, queued_at)
     values ('00000000-0000-4000-8000-00000000f001', 'research', 0, now())`,
  );
}
