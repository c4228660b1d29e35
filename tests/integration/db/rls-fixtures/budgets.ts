// Fixture rows for the budget tables (budget_windows, budget_reservations, notifications), made through the budget
// functions themselves on the foundation's fixture task (agent `research`).
import { sql } from "../sql";

const TASK = "00000000-0000-4000-8000-00000000f001";

export async function insertFixtures(url: string): Promise<void> {
  await sql(url, `select * from public.reserve_budget('research', $1, 'turn-1', 'claude-sonnet-4-6', 50000, now())`, [TASK]);
  await sql(url, `select * from public.settle_budget($1, 'turn-1', 12000, 1000, 200, 0, 0, now())`, [TASK]);
  await sql(url, `select public.note_budget_exhausted('research', $1, current_date, null, null, now())`, [TASK]);
}
