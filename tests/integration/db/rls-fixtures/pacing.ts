// Fixture rows for the pacing tables (rate_limits, rate_limit_waiters), made through their own function: a model
// with a one-request-per-minute limit, taken once, then a second caller left waiting with a ticket.
import { sql } from "../sql";

export async function insertFixtures(url: string): Promise<void> {
  await sql(url, `insert into public.rate_limits (model, requests_per_minute) values ('claude-rls-fixture', 1)`);
  await sql(url, `select * from public.take_rate_limit('claude-rls-fixture', 'rls-1', 0, 10, 10, null, now())`);
  await sql(url, `select * from public.take_rate_limit('claude-rls-fixture', 'rls-2', 0, 10, 10, null, now())`);
}
