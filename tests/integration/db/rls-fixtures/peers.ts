// Fixture rows for peers and webhook_source_changes (the latter through save_webhook_source, its only writer).
import { sql } from "../sql";

export async function insertFixtures(url: string): Promise<void> {
  await sql(
    url,
    `insert into public.peers (name, base_url, source, secret_env_name) values ('rls-peer', 'https://peer.example', 'from-a', 'RLS_PEER_SECRET')`,
  );
  await sql(
    url,
    `select * from public.save_webhook_source('rls-audited', '{"agent_id": "research", "prompt_template": "x", "secret_env_names": ["RLS_AUDIT_SECRET"]}'::jsonb, 'rls-fixture', true)`,
  );
}
