// `/agents`: every agent's settings, today's spend against its cap, the concurrency in use, the last 14 days of
// spend (per agent against its cap, and per model) as a server-rendered chart, the edit form, and the audit trail.
import { listAgentChanges, listAgents, MODELS } from "@/lib/agents/settings";
import { CSRF_FIELD } from "@/lib/console/csrf";
import { duration, percent, usd, when } from "@/lib/console/format";
import { formToken, requireSession } from "@/lib/console/server";
import { spendHistory } from "@/lib/console/spend";
import { db } from "@/lib/db/server";
import { SpendChart } from "../_components/spend-chart";
import { AgentForm } from "./agent-form";

export const dynamic = "force-dynamic";
export const metadata = { title: "Agents · Nightshift" };

export default async function AgentsPage() {
  const session = await requireSession();
  const client = db();
  const [agents, history] = await Promise.all([listAgents(client), spendHistory(client)]);
  const changes = await Promise.all(agents.map((a) => listAgentChanges(client, a.id, 5)));
  const csrf = { name: CSRF_FIELD, value: formToken(session) };

  return (
    <main>
      <h1>Agents</h1>
      <section aria-labelledby="spend14">
        <h2 id="spend14">Spend, last 14 days</h2>
        <SpendChart history={history} />
      </section>

      {agents.map((a, i) => {
        const p = percent(a.today.committed_micros, a.budget.daily_budget_micros);
        return (
          <section key={a.id} className="panel" aria-labelledby={`agent-${a.id}`} data-agent-id={a.id}>
            <h2 id={`agent-${a.id}`} className="panel-title">
              {a.display_name} <code className="muted">{a.id}</code> {a.enabled ? null : <span className="badge cancelled">disabled</span>}
            </h2>
            {a.description ? <p className="muted">{a.description}</p> : null}
            <div className="grid">
              <div className="stat" data-stat="spend-today">
                Spent today <b>{usd(a.today.committed_micros)}</b>
                <span className="muted">
                  of {usd(a.budget.daily_budget_micros)} · {a.today.day} ({a.budget.timezone})
                </span>
                {a.today.batch_saving_micros > 0 ? <span className="muted" data-stat="batch-saving">batches saved {usd(a.today.batch_saving_micros)}</span> : null}
                <div className={`bar${p >= 100 ? " over" : p >= 80 ? " high" : ""}`} role="progressbar" aria-label={`${a.display_name} spend today`} aria-valuemin={0} aria-valuemax={100} aria-valuenow={p}>
                  <span style={{ width: `${p}%` }} />
                </div>
              </div>
              <div className="stat" data-stat="concurrency">
                Running now <b>{a.concurrency_in_use} of {a.limits.concurrency}</b>
                <span className="muted">concurrency slots in use</span>
              </div>
              <div className="stat">
                Model <b className="small">{a.model}</b>
                <span className="muted">tools: {a.tools.length ? a.tools.join(", ") : "none"} · default mode {a.default_mode}</span>
              </div>
              <div className="stat">
                Limits <b className="small">{a.limits.max_turns} turns · {a.limits.max_tokens.toLocaleString("en-US")} tokens</b>
                <span className="muted">wall clock {duration(a.limits.wall_clock_seconds * 1000)}</span>
              </div>
              <div className="stat">
                Approval <b className="small">{a.approval.requires_approval ? "every draft" : "when asked"}</b>
                <span className="muted">
                  auto-{a.approval.auto_action} after {duration(a.approval.timeout_seconds * 1000)}
                </span>
              </div>
            </div>
            <details className="edit">
              <summary>Edit settings</summary>
              <AgentForm
                agent={{
                  id: a.id,
                  dailyBudgetUsd: (a.budget.daily_budget_micros / 1_000_000).toFixed(2),
                  maxTurns: a.limits.max_turns,
                  maxTokens: a.limits.max_tokens,
                  wallClockSeconds: a.limits.wall_clock_seconds,
                  concurrency: a.limits.concurrency,
                  model: a.model,
                  requiresApproval: a.approval.requires_approval,
                  approvalTimeoutMinutes: Math.round(a.approval.timeout_seconds / 60),
                  approvalAutoAction: a.approval.auto_action,
                  budgetTimezone: a.budget.timezone,
                  enabled: a.enabled,
                  defaultMode: a.default_mode,
                }}
                models={MODELS}
                csrf={csrf}
              />
            </details>
            {changes[i]!.length ? (
              <details>
                <summary>Recent changes</summary>
                <ul className="changes" aria-label={`Changes to ${a.id}`}>
                  {changes[i]!.map((c) => (
                    <li key={c.id}>
                      {when(c.changed_at)} · {c.actor}:{" "}
                      {Object.entries(c.changes)
                        .map(([k, v]) => `${k.replace(/_micros$/, "").replace(/_/g, " ")} ${show(k, v.from)} → ${show(k, v.to)}`)
                        .join("; ")}
                    </li>
                  ))}
                </ul>
              </details>
            ) : null}
          </section>
        );
      })}
    </main>
  );
}

function show(field: string, v: unknown): string {
  if (field === "daily_budget_micros" && typeof v === "number") return usd(v);
  return typeof v === "string" ? v : JSON.stringify(v);
}
