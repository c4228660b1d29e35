// Fixture row for agent_changes, made through update_agent_settings (the only writer).
import { sql } from "../sql";

export async function insertFixtures(url: string): Promise<void> {
  await sql(url, `select * from public.update_agent_settings('outreach', '{"max_turns": 5}'::jsonb, 'rls-fixture')`);
}
