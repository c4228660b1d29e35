// `/tasks/[id]`: the step timeline (durations, tokens, cost), the result, the error and the approval history.
import Link from "next/link";
import { notFound } from "next/navigation";
import { duration, jsonText, percent, statusLabel, timeLeft, usd, when } from "@/lib/console/format";
import { CSRF_FIELD } from "@/lib/console/csrf";
import { approvalHistory, taskDetail } from "@/lib/console/queries";
import { formToken, requireSession } from "@/lib/console/server";
import { db } from "@/lib/db/server";
import { TERMINAL_STATUSES } from "@/lib/tasks/schema";
import { cancelTaskAction } from "../../actions";
import { AutoRefresh } from "../../auto-refresh";
import { Deliveries } from "./deliveries";

export const dynamic = "force-dynamic";
export const metadata = { title: "Task · Nightshift" };

export default async function TaskPage({ params }: { params: Promise<{ id: string }> }) {
  const session = await requireSession();
  const { id } = await params;
  const [detail, approvals] = await Promise.all([taskDetail(session, db(), id), approvalHistory(session, db(), id)]);
  if (!detail) notFound();
  const { task, steps } = detail;
  const done = TERMINAL_STATUSES.includes(task.status);
  const resultText = jsonText(task.result);
  const errorText = jsonText(task.error);

  return (
    <main>
      {done ? null : <AutoRefresh seconds={3} />}
      <p className="muted">
        <Link href="/">← Tasks</Link>
      </p>
      <h1>
        Task <code>{task.task_id.slice(0, 8)}</code> <span className={`badge ${task.status}`}>{statusLabel(task.status)}</span>
      </h1>
      {task.status_reason ? <p className="muted">{task.status_reason}</p> : null}
      {done ? null : (
        <form action={cancelTaskAction}>
          <input type="hidden" name={CSRF_FIELD} value={formToken(session)} />
          <input type="hidden" name="task_id" value={task.task_id} />
          <button type="submit" className="danger">
            Cancel task
          </button>
        </form>
      )}
      <div className="grid">
        <div className="stat">
          Agent <b>{task.agent}</b>
        </div>
        <div className="stat">
          Progress{" "}
          <b>
            {task.progress.done}/{task.progress.total}
          </b>
          <div className="bar" role="progressbar" aria-label="progress" aria-valuemin={0} aria-valuemax={task.progress.total} aria-valuenow={task.progress.done}>
            <span style={{ width: `${percent(task.progress.done, task.progress.total)}%` }} />
          </div>
        </div>
        <div className="stat">
          Cost <b>{usd(task.cost_micros)}</b>
        </div>
        <div className="stat">
          Created <b style={{ fontSize: "1rem" }}>{when(task.created_at)}</b>
          {task.finished_at ? <span className="muted">finished {when(task.finished_at)}</span> : null}
        </div>
      </div>

      <h2>Prompt</h2>
      <pre>{task.prompt}</pre>

      {errorText ? (
        <section aria-labelledby="error">
          <h2 id="error">Error</h2>
          <pre className="notice error">{errorText}</pre>
        </section>
      ) : null}

      {resultText ? (
        <section aria-labelledby="result">
          <h2 id="result">Result</h2>
          <pre data-testid="result">{resultText}</pre>
        </section>
      ) : null}

      {approvals.length ? (
        <section aria-labelledby="approvals">
          <h2 id="approvals">Approvals</h2>
          <table className="cards" aria-label="Approval history">
            <thead>
              <tr>
                <th>Draft</th>
                <th>Decision</th>
                <th>By</th>
                <th>When</th>
                <th>Notes</th>
              </tr>
            </thead>
            <tbody>
              {approvals.map((a) => (
                <tr key={a.id} data-approval-id={a.id}>
                  <td>
                    {a.stage} #{a.revision}
                    {a.draft ? (
                      <details>
                        <summary className="muted">draft</summary>
                        <pre>{jsonText(a.draft)}</pre>
                      </details>
                    ) : null}
                  </td>
                  <td data-label="Decision">
                    <span className={`badge ${a.status === "approved" || a.status === "approved_with_changes" ? "completed" : a.status === "pending" ? "pending" : "rejected"}`}>
                      {statusLabel(a.status)}
                    </span>
                    {a.status === "pending" ? (
                      <div className="muted">
                        <Link href="/review">review</Link> · {timeLeftText(a.expires_at)}
                      </div>
                    ) : null}
                  </td>
                  <td data-label="By">{a.decided_via === "timeout" ? `auto (${a.auto_action})` : (a.decided_by ?? "—")}</td>
                  <td data-label="When">{when(a.decided_at ?? a.requested_at)}</td>
                  <td data-label="Notes">{a.notes ?? ""}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>
      ) : null}

      <Deliveries taskId={id} />

      <section aria-labelledby="timeline">
        <h2 id="timeline">Timeline</h2>
        {steps.length === 0 ? (
          <p className="muted">No steps yet.</p>
        ) : (
          <table className="cards" aria-label="Steps">
            <thead>
              <tr>
                <th>Step</th>
                <th>Kind</th>
                <th>Status</th>
                <th className="num">Duration</th>
                <th className="num">Tokens in/out</th>
                <th className="num">Cost</th>
              </tr>
            </thead>
            <tbody>
              {steps.map((s) => (
                <tr key={s.stepId} data-step-id={s.stepId}>
                  <td>
                    <code>{s.stepId}</code>
                    <div className="muted">{when(s.startedAt)}</div>
                  </td>
                  <td data-label="Kind">{s.kind}</td>
                  <td data-label="Status">
                    <span className={`badge ${s.status}`}>{s.status}</span>
                  </td>
                  <td className="num" data-label="Duration">
                    {duration(s.durationMs)}
                  </td>
                  <td className="num" data-label="Tokens">
                    {s.inputTokens} / {s.outputTokens}
                  </td>
                  <td className="num" data-label="Cost">
                    {usd(s.costMicros)}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>
    </main>
  );
}

function timeLeftText(expiresAt: string): string {
  return timeLeft(Date.parse(expiresAt), Date.now());
}
