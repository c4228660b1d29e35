// Shared set-up for the budget tests: agents and tasks made with superuser SQL, and the ledger invariants checked
// in SQL after every scenario.
import { randomBytes, randomUUID } from "node:crypto";
import { expect } from "vitest";
import { sql } from "../db/sql";

/** A fresh agent with its own cap and time zone, so test cases never share a budget window. */
export async function createAgent(
  url: string,
  opts: { capMicros: number; timezone?: string; model?: string; id?: string },
): Promise<string> {
  const id = opts.id ?? `budget-${randomBytes(5).toString("hex")}`;
  await sql(
    url,
    `insert into public.agents (id, display_name, model, system_prompt, daily_budget_micros, budget_timezone)
     values ($1, $1, $2, 'You are a test agent.', $3, $4)`,
    [id, opts.model ?? "claude-sonnet-4-6", opts.capMicros, opts.timezone ?? "UTC"],
  );
  return id;
}

export async function createTask(url: string, agentId: string): Promise<string> {
  const id = randomUUID();
  await sql(url, `insert into public.tasks (id, agent_id, prompt) values ($1, $2, 'budget test')`, [id, agentId]);
  return id;
}

export async function setCap(url: string, agentId: string, capMicros: number): Promise<void> {
  await sql(url, `update public.agents set daily_budget_micros = $2 where id = $1`, [agentId, capMicros]);
}

export async function taskCost(url: string, taskId: string): Promise<number> {
  const [row] = await sql<{ c: string }>(url, `select cost_micros::text as c from public.tasks where id = $1`, [taskId]);
  return Number(row!.c);
}

/** Committed spend of an agent's windows computed from the ledger itself (not from the counters). */
export async function ledgerCommitted(url: string, agentId: string): Promise<Record<string, number>> {
  const rows = await sql<{ window_start: string; committed: string }>(
    url,
    `select window_start::text,
            (coalesce(sum(reserved_micros) filter (where status = 'reserved'), 0)
             + coalesce(sum(actual_micros) filter (where status = 'settled'), 0))::text as committed
       from public.budget_reservations where agent_id = $1 group by window_start`,
    [agentId],
  );
  return Object.fromEntries(rows.map((r) => [r.window_start, Number(r.committed)]));
}

/** The counters equal the ledger they summarise, for every window of the agent (or of every agent). */
export async function expectCountersMatchLedger(url: string, agentId?: string): Promise<void> {
  const rows = await sql<Record<string, string>>(
    url,
    `select w.agent_id, w.window_start::text,
            w.reserved_micros::text as counter_reserved, w.settled_micros::text as counter_settled,
            coalesce((select sum(r.reserved_micros) from public.budget_reservations r
                       where r.agent_id = w.agent_id and r.window_start = w.window_start and r.status = 'reserved'), 0)::text
              as ledger_reserved,
            coalesce((select sum(r.actual_micros) from public.budget_reservations r
                       where r.agent_id = w.agent_id and r.window_start = w.window_start and r.status = 'settled'), 0)::text
              as ledger_settled
       from public.budget_windows w
      where $1::text is null or w.agent_id = $1`,
    [agentId ?? null],
  );
  for (const r of rows) {
    expect({ reserved: r.counter_reserved, settled: r.counter_settled }, `${r.agent_id} ${r.window_start}`).toEqual({
      reserved: r.ledger_reserved,
      settled: r.ledger_settled,
    });
  }
}

export async function liveReservations(url: string, taskId: string, stepId: string) {
  return sql<{ id: string; status: string; reserved_micros: string }>(
    url,
    `select id, status::text, reserved_micros::text from public.budget_reservations
      where task_id = $1 and step_id = $2 order by reserved_at, created_at`,
    [taskId, stepId],
  );
}
