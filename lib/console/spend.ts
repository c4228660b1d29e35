// Spend over the last days for the console's chart: per agent per local day against that day's cap, and per model.
// From the budget ledger (spend_by_agent_day, spend_by_model), so it is the money the cap was enforced on.
import type { AdminClient } from "@/lib/db/admin";
import { spendByAgentDay, spendByModel } from "@/lib/budget";

export const SPEND_DAYS = 14;

export interface AgentSpendSeries {
  agentId: string;
  displayName: string;
  capMicros: number;
  /** oldest first, one entry per day, days without spend included */
  days: { day: string; committedMicros: number; capMicros: number }[];
  totalMicros: number;
}

export interface SpendHistory {
  from: string;
  to: string;
  agents: AgentSpendSeries[];
  models: { model: string; settledMicros: number; calls: number }[];
}

const dayOf = (d: Date) => d.toISOString().slice(0, 10);

export async function spendHistory(db: AdminClient, now = new Date(), days = SPEND_DAYS): Promise<SpendHistory> {
  // A day either side of UTC covers every agent's own local day.
  const to = dayOf(new Date(now.getTime() + 86_400_000));
  const fromDate = new Date(now.getTime() - (days - 1) * 86_400_000);
  const from = dayOf(fromDate);
  const [agentsRes, rows, models] = await Promise.all([
    db.from("agents").select("id,display_name,daily_budget_micros").order("id"),
    spendByAgentDay(db, { from, to }),
    spendByModel(db, { from, to }),
  ]);
  if (agentsRes.error) throw new Error(`agents read failed: ${agentsRes.error.message}`);
  const labels = Array.from({ length: days }, (_, i) => dayOf(new Date(fromDate.getTime() + i * 86_400_000)));
  const agents = agentsRes.data.map((a) => {
    const cap = Number(a.daily_budget_micros);
    const series = labels.map((day) => {
      const r = rows.find((x) => x.agent_id === a.id && String(x.window_start).slice(0, 10) === day);
      // A past day keeps the cap it had (the window's); a day with no window shows today's cap.
      return { day, committedMicros: r ? Number(r.committed_micros) : 0, capMicros: r ? Number(r.cap_micros) : cap };
    });
    return { agentId: a.id, displayName: a.display_name, capMicros: cap, days: series, totalMicros: series.reduce((s, d) => s + d.committedMicros, 0) };
  });
  return {
    from,
    to: labels[labels.length - 1]!,
    agents,
    models: models
      .map((m) => ({ model: m.model, settledMicros: Number(m.settled_micros) + Number(m.reserved_micros), calls: m.calls }))
      .filter((m) => m.settledMicros > 0 || m.calls > 0),
  };
}
