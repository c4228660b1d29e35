// `/pipelines`: each research → analyze → report pipeline with its stages (status, task, output size and cost) and,
// once ready, the report rendered as sanitised markdown. Stage tasks link to their task pages.
import Link from "next/link";
import { statusLabel, usd, when } from "@/lib/console/format";
import { requireSession } from "@/lib/console/server";
import { db } from "@/lib/db/server";
import { listPipelines } from "@/lib/pipelines";
import { AutoRefresh } from "../auto-refresh";
import { Markdown } from "../_components/markdown";

export const dynamic = "force-dynamic";
export const metadata = { title: "Pipelines · Nightshift" };

const STAGE_BADGE: Record<string, string> = { pending: "queued", running: "running", completed: "completed", failed: "failed" };

export default async function PipelinesPage() {
  await requireSession();
  const pipelines = await listPipelines(db(), 20);
  const moving = pipelines.some((p) => p.status === "queued" || p.status === "running");
  return (
    <main>
      {moving ? <AutoRefresh seconds={5} /> : null}
      <h1>Pipelines</h1>
      <p className="muted">
        Research → analyze → report, each stage a task of its own (queue one with <code>POST /api/pipelines</code>). The newest 20.
      </p>
      {pipelines.length === 0 ? <p className="muted">No pipelines yet.</p> : null}
      {pipelines.map((p) => (
        <article key={p.pipeline_id} className="panel" data-pipeline-id={p.pipeline_id} aria-label={`Pipeline ${p.topic.slice(0, 60)}`}>
          <h2 className="panel-title">
            {p.topic.length > 120 ? `${p.topic.slice(0, 120)}…` : p.topic} <span className={`badge ${STAGE_BADGE[p.status] ?? p.status}`}>{statusLabel(p.status)}</span>
            {p.degraded ? (
              <span className="badge degraded" data-degraded title={`Built from cached research: ${(p.degraded as { reason?: string }).reason ?? ""}`}>
                degraded: cached research of {String((p.degraded as { cached_at?: string }).cached_at ?? "").slice(0, 10)}
              </span>
            ) : null}
          </h2>
          <p className="muted">
            started {when(p.started_at ?? p.created_at)}
            {p.finished_at ? ` · finished ${when(p.finished_at)}` : ""} · report by {p.report_agent}
            {p.status_reason ? ` · ${p.status_reason}` : ""}
          </p>
          <ol className="stages">
            {p.stages.map((s) => (
              <li key={s.stage} data-stage={s.stage}>
                <span className="stage-name">{s.stage}</span>
                <span className={`badge ${STAGE_BADGE[s.status] ?? s.status}`}>{statusLabel(s.status)}</span>
                {s.task_id ? (
                  <Link href={`/tasks/${s.task_id}`}>task {s.task_id.slice(0, 8)}</Link>
                ) : (
                  <span className="muted">no task yet</span>
                )}
                {s.output ? (
                  <span className="muted">
                    {s.output.chars.toLocaleString("en-US")} chars{s.output.partial ? " (partial)" : ""} · {usd(s.output.cost_micros)}
                  </span>
                ) : null}
              </li>
            ))}
          </ol>
          {p.report ? (
            <details open={pipelines.length === 1}>
              <summary>Report</summary>
              <Markdown text={p.report.text} testId="report" />
            </details>
          ) : null}
        </article>
      ))}
    </main>
  );
}
