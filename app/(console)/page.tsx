// `/`: the task list (status, agent, progress, cost) with filters and pagination, each agent's spend today against
// its daily cap, and a form to queue new work.
import Link from "next/link";
import { CSRF_FIELD } from "@/lib/console/csrf";
import { percent, progressText, statusLabel, usd, when } from "@/lib/console/format";
import { newFormKey } from "@/lib/console/operations";
import { agentSpendToday, dashboardTasks, enabledAgents, parseFilters, type DashboardFilters } from "@/lib/console/queries";
import { formToken, requireSession } from "@/lib/console/server";
import { db } from "@/lib/db/server";
import { TASK_STATUSES, TERMINAL_STATUSES } from "@/lib/tasks/schema";
import { AutoRefresh } from "./auto-refresh";
import { QueueForm } from "./queue-form";

export const dynamic = "force-dynamic";
export const metadata = { title: "Tasks · Nightshift" };

export default async function Dashboard({ searchParams }: { searchParams: Promise<Record<string, string | string[] | undefined>> }) {
  const session = await requireSession();
  const filters = parseFilters(await searchParams);
  const client = db();
  const [page, spend, agents] = await Promise.all([
    dashboardTasks(session, client, filters),
    agentSpendToday(session, client),
    enabledAgents(session, client),
  ]);
  const moving = page.tasks.some((t) => !TERMINAL_STATUSES.includes(t.status));

  return (
    <main>
      {moving ? <AutoRefresh seconds={4} /> : null}
      <h1>Tasks</h1>

      <section aria-labelledby="budgets">
        <h2 id="budgets">Spend today</h2>
        <div className="grid">
          {spend.map((a) => {
            const p = percent(a.spentMicros, a.capMicros);
            return (
              <div className="stat" key={a.id} data-agent={a.id}>
                <span>{a.displayName}</span>
                <b>
                  {usd(a.spentMicros)} <span className="muted">of {usd(a.capMicros)}</span>
                </b>
                <div
                  className={`bar${p >= 100 ? " over" : p >= 80 ? " high" : ""}`}
                  role="progressbar"
                  aria-label={`${a.displayName} spend today`}
                  aria-valuemin={0}
                  aria-valuemax={100}
                  aria-valuenow={p}
                >
                  <span style={{ width: `${p}%` }} />
                </div>
                {a.batchSavingMicros > 0 ? <span className="muted">batches saved {usd(a.batchSavingMicros)}</span> : null}
                {a.enabled ? null : <span className="muted">disabled</span>}
              </div>
            );
          })}
        </div>
      </section>

      <section aria-labelledby="queue">
        <h2 id="queue">Queue work</h2>
        {agents.length ? (
          <QueueForm agents={agents} csrf={{ name: CSRF_FIELD, value: formToken(session) }} formKey={newFormKey()} />
        ) : (
          <p className="muted">No enabled agents.</p>
        )}
      </section>

      <section aria-labelledby="list">
        <h2 id="list">All tasks</h2>
        <form className="filters" method="get" action="/" aria-label="Filter tasks">
          <label>
            Status
            <select name="status" defaultValue={filters.status ?? ""}>
              <option value="">any</option>
              {TASK_STATUSES.map((s) => (
                <option key={s} value={s}>
                  {statusLabel(s)}
                </option>
              ))}
            </select>
          </label>
          <label>
            Agent
            <select name="agent" defaultValue={filters.agent ?? ""}>
              <option value="">any</option>
              {spend.map((a) => (
                <option key={a.id} value={a.id}>
                  {a.displayName}
                </option>
              ))}
            </select>
          </label>
          <button type="submit" className="secondary">
            Filter
          </button>
        </form>

        {page.tasks.length === 0 ? (
          <p className="muted">No tasks{filters.status || filters.agent ? " match these filters" : " yet"}.</p>
        ) : (
          <table className="cards" aria-label="Tasks">
            <thead>
              <tr>
                <th>Task</th>
                <th>Status</th>
                <th>Agent</th>
                <th title="model turns used of the agent's turn limit">Turns</th>
                <th className="num">Cost</th>
              </tr>
            </thead>
            <tbody>
              {page.tasks.map((t) => {
                const ended = TERMINAL_STATUSES.includes(t.status);
                const p = percent(t.progress.done, t.progress.total);
                return (
                  <tr key={t.task_id} data-task-id={t.task_id}>
                    <td>
                      <Link href={`/tasks/${t.task_id}`}>{t.prompt.length > 90 ? `${t.prompt.slice(0, 90)}…` : t.prompt}</Link>
                      <div className="muted">{when(t.created_at)}</div>
                    </td>
                    <td data-label="Status">
                      <span className={`badge ${t.status}`}>{statusLabel(t.status)}</span>
                    </td>
                    <td data-label="Agent">{t.agent}</td>
                    <td data-label="Turns">
                      <div
                        className="bar"
                        role="progressbar"
                        aria-label="model turns used of the limit"
                        aria-valuemin={0}
                        aria-valuemax={t.progress.total}
                        aria-valuenow={t.progress.done}
                      >
                        <span style={{ width: `${p}%` }} />
                      </div>
                      <span className="muted">{progressText(t.progress, ended)}</span>
                    </td>
                    <td className="num" data-label="Cost">
                      {usd(t.cost_micros)}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        )}
        <nav className="pager" aria-label="Pages">
          {filters.cursor ? <Link href={pageHref(filters, undefined)}>Newest</Link> : <span />}
          {page.nextCursor ? <Link href={pageHref(filters, page.nextCursor)}>Older →</Link> : null}
        </nav>
      </section>
    </main>
  );
}

function pageHref(f: DashboardFilters, cursor: string | undefined): string {
  const q = new URLSearchParams();
  if (f.status) q.set("status", f.status);
  if (f.agent) q.set("agent", f.agent);
  if (cursor) q.set("cursor", cursor);
  const s = q.toString();
  return s ? `/?${s}` : "/";
}
