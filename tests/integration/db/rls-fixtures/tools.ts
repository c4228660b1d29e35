// Fixture rows for the tools tables (side_effects, artifacts, email_quota_uses), on the foundation's fixture task.
import { sql } from "../sql";

const TASK = "00000000-0000-4000-8000-00000000f001";

export async function insertFixtures(url: string): Promise<void> {
  await sql(
    url,
    `insert into public.side_effects (task_id, tool_use_id, tool, request_hash, request, status, result, completed_at)
     values ($1, 'toolu_rlsfixture', 'send_email', repeat('a', 64), '{"to":["someone@example.com"]}',
             'completed', '{"ok":true}', now())`,
    [TASK],
  );
  await sql(url, "select public.save_artifact($1, 'toolu_rlsfixture', 'fixture.md', 'text/markdown', '# fixture')", [TASK]);
  await sql(url, "select * from public.reserve_email_quota($1, 'toolu_rlsfixture', 1, 100)", [TASK]);
}
