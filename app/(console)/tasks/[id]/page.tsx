// `/tasks/[id]`: the steps as bars over time and as a table (durations, tokens, cost), the result rendered as
// sanitised markdown, the artifacts the agent saved, the error and the approval history.
import Link from "next/link";
import { notFound } from "next/navigation";
import { listArtifacts } from "@/lib/artifacts";
import { bytes, duration, errorText as friendlyError, jsonText, percent, progressText, statusLabel, timeLeft, usd, when } from "@/lib/console/format";
import { buildTimeline } from "@/lib/console/timeline";
import { CSRF_FIELD } from "@/lib/console/csrf";
import { approvalHistory, taskDetail } from "@/lib/console/queries";
import { formToken, requireSession } from "@/lib/console/server";
import { db } from "@/lib/db/server";
import { TERMINAL_STATUSES } from "@/lib/tasks/schema";
import { cancelTaskAction } from "../../actions";
import { AutoRefresh } from "../../auto-refresh";
import { Markdown } from "../../_components/markdown";
import { Timeline } from "../../_components/timeline";
import { Deliveries } from "./deliveries";

export const dynamic = "force-dynamic";
export const metadata = { title: "Task · Nightshift" };

export default async function TaskPage({ params }: { params: Promise<{ id: string }> }) {
  const session = await requireSession();
  const { id } = await params;
  const [detail, approvals] = await Promise.all([taskDetail(session, db(), id), approvalHistory(session, db(), id)]);
  if (!detail) notFound();
  const { task, steps } = detail;
  const artifacts = await listArtifacts(db(), task.task_id);
  const done = TERMINAL_STATUSES.includes(task.status);
  const resultText = jsonText(task.result);
  const errorText = friendlyError(task.error);
  const timeline = buildTimeline(task, steps, approvals.filter((a) => a.visible_at), Date.now());

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
        <form action={cancelTaskAction} className="cancel-form">
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
        <div className="stat" data-testid="progress">
          Progress <b>{progressText(task.progress, done)}</b>
          <div className="bar" role="progressbar" aria-label="model turns used of the limit" aria-valuemin={0} aria-valuemax={task.progress.total} aria-valuenow={task.progress.done}>
            <span style={{ width: `${percent(task.progress.done, task.progress.total)}%` }} />
          </div>
        </div>
        <div className="stat">
          Cost <b>{usd(task.cost_micros)}</b>
          {task.batch_saving_micros > 0 ? <span className="muted" data-stat="batch-saving">batches saved {usd(task.batch_saving_micros)}</span> : null}
          {task.estimated_cost_micros > 0 ? <span className="muted">{usd(task.estimated_cost_micros)} estimated (answers lost)</span> : null}
          <span className="muted">
            mode {task.mode}
            {task.deadline ? ` · deadline ${when(task.deadline)}` : ""}
          </span>
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
          <p className="notice error" data-testid="error">
            {errorText}
          </p>
          <details className="raw">
            <summary>Details</summary>
            <pre>{jsonText(task.error)}</pre>
          </details>
        </section>
      ) : null}

      {resultText ? (
        <section aria-labelledby="result">
          <h2 id="result">Result</h2>
          <Markdown text={resultText} testId="result" />
        </section>
      ) : null}

      <section aria-labelledby="artifacts">
        <h2 id="artifacts">Artifacts ({artifacts.length})</h2>
        {artifacts.length === 0 ? (
          <p className="muted">The agent saved no artifacts.</p>
        ) : (
          <table className="cards" aria-label="Artifacts">
            <thead>
              <tr>
                <th>Name</th>
                <th>Type</th>
                <th className="num">Size</th>
                <th>Saved</th>
              </tr>
            </thead>
            <tbody>
              {artifacts.map((a) => (
                <tr key={a.id} data-artifact-id={a.id}>
                  <td>
                    <Link href={`/artifacts/${a.id}`}>{a.name}</Link>
                  </td>
                  <td data-label="Type">{a.content_type}</td>
                  <td className="num" data-label="Size">
                    {bytes(a.bytes)}
                  </td>
                  <td data-label="Saved">{when(a.created_at)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>

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
                        <Markdown text={jsonText(a.draft)} />
                      </details>
                    ) : null}
                    {a.edited_text ? (
                      <details>
                        <summary className="muted">published edit</summary>
                        <Markdown text={a.edited_text} />
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
          <Timeline bars={timeline.bars} spanMs={timeline.spanMs} />
        )}
        {steps.length === 0 ? null : (
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
