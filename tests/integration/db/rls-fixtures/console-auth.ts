// Fixture rows for console_sessions and console_login_limits (20261129111000_console_auth.sql).
import { sql } from "../sql";

export async function insertFixtures(url: string): Promise<void> {
  await sql(url, `insert into public.console_sessions (sid, expires_at) values ('fixture-session-0001', now() + interval '1 day')`);
  await sql(
    url,
    `insert into public.console_login_limits (client, attempts, failures, window_started_at, updated_at)
     values ('ip:192.0.2.1', 1, 1, now(), now())`,
  );
}
