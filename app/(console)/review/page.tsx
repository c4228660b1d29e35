// `/review`: the morning summary, then the drafts waiting for a decision (oldest first) with the time left before
// the automatic action, each with approve / approve with changes / reject.
import Link from "next/link";
import { CSRF_FIELD } from "@/lib/console/csrf";
import { draftDisplay, jsonText, timeLeft, usd, when } from "@/lib/console/format";
import { countDeadLettersSince, countDegradedSince } from "@/lib/console/failures";
import { morningSummary, OVERNIGHT_HOURS, reviewQueue } from "@/lib/console/queries";
import { formToken, requireSession } from "@/lib/console/server";
import { db } from "@/lib/db/server";
import { Markdown } from "../_components/markdown";
import { DecisionForm } from "./decision-form";

export const dynamic = "force-dynamic";
export const metadata = { title: "Review · Nightshift" };

export default async function ReviewPage() {
  const session = await requireSession();
  const client = db();
  const [summary, pending] = await Promise.all([morningSummary(session, client), reviewQueue(session, client)]);
  const [deadLetters, degraded] = await Promise.all([countDeadLettersSince(client, summary.since), countDegradedSince(client, summary.since)]);
  const csrf = { name: CSRF_FIELD, value: formToken(session) };
  const now = Date.now();

  return (
    <main>
      <h1>Morning review</h1>
      <section aria-labelledby="summary">
        <h2 id="summary" className="muted" style={{ fontSize: "0.95rem", marginTop: 0 }}>
          Last {OVERNIGHT_HOURS} hours (since {when(summary.since)})
        </h2>
        <div className="grid">
          <Link className="stat" href="/?status=completed" data-stat="completed">
            Finished <b>{summary.completed}</b>
          </Link>
          <Link className="stat" href="/?status=failed" data-stat="failed">
            Failed or stopped <b>{summary.failed}</b>
          </Link>
          <Link className="stat" href="/?status=waiting_approval" data-stat="waiting">
            Waiting <b>{summary.waitingApproval + summary.waitingBudget}</b>
            <span className="muted">
              {summary.waitingApproval} for approval, {summary.waitingBudget} for budget
            </span>
          </Link>
          <Link className="stat" href="/failed" data-stat="dead-letters">
            New dead letters <b>{deadLetters}</b>
            <span className="muted">to replay or discard</span>
          </Link>
          <Link className="stat" href="/pipelines" data-stat="degraded">
            Degraded reports <b>{degraded}</b>
            <span className="muted">built from cached research</span>
          </Link>
          <div className="stat" data-stat="spent">
            Spent <b>{usd(summary.spentMicros)}</b>
          </div>
        </div>
      </section>

      <section aria-labelledby="pending">
        <h2 id="pending">Waiting for you ({pending.length})</h2>
        {pending.length === 0 ? <p className="muted">Nothing to review.</p> : null}
        {pending.map((a) => (
          <article key={a.id} className="panel" data-approval-id={a.id} aria-label={`Approval for task ${a.taskId.slice(0, 8)}`}>
            <h3>
              <Link href={`/tasks/${a.taskId}`}>{a.agent ?? "task"}</Link> · {a.stage}
              {a.revision > 1 ? ` (revision ${a.revision})` : ""}
            </h3>
            <p className="muted" data-testid="time-left">
              {Date.parse(a.expiresAt) > now ? (
                <>
                  <time dateTime={a.expiresAt}>{timeLeft(Date.parse(a.expiresAt), now)}</time>, then auto-
                  {a.autoAction === "approve" ? "approve" : "reject"}
                </>
              ) : (
                <>Deadline passed: auto-{a.autoAction === "approve" ? "approve" : "reject"} applies</>
              )}{" "}
              · requested {when(a.requestedAt)}
            </p>
            {a.prompt ? <p className="muted">Asked: {a.prompt.length > 200 ? `${a.prompt.slice(0, 200)}…` : a.prompt}</p> : null}
            <DraftView draft={a.draft} />
            <DecisionForm approvalId={a.id} csrf={csrf} draftText={jsonText(a.draft)} />
          </article>
        ))}
      </section>
    </main>
  );
}

/** The draft as lib/console/format.ts's draftDisplay says: an email as plain text, anything else as markdown. */
function DraftView({ draft }: { draft: unknown }) {
  const d = draftDisplay(draft);
  if (d.as === "empty") return <p className="muted">(empty draft)</p>;
  if (d.as === "plain") return <pre data-testid="draft">{d.text}</pre>;
  return <Markdown text={d.text} testId="draft" />;
}
