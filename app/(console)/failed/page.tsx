// `/failed`: the dead-letter queue and the breaker panel. Each failed task shows the failure in words, the step it
// failed in and what it cost, with Replay (optionally edited), Discard (with a note) and Replay selected. The panel
// shows every dependency's circuit breaker: its state, since when, and the last error.
import Link from "next/link";
import { listBreakers } from "@/lib/breakers";
import { CSRF_FIELD } from "@/lib/console/csrf";
import { usd, when } from "@/lib/console/format";
import { newFormKey } from "@/lib/console/operations";
import { formToken, requireSession } from "@/lib/console/server";
import { DEAD_LETTER_STATUSES, listDeadLetters, type DeadLetterStatus } from "@/lib/dead-letters";
import { db } from "@/lib/db/server";
import { EntryForms, ReplaySelected } from "./entry-forms";

export const dynamic = "force-dynamic";
export const metadata = { title: "Failed · Nightshift" };

const STATE_LABEL: Record<string, string> = { closed: "up", open: "down (open)", half_open: "probing (half-open)" };

export default async function FailedPage({ searchParams }: { searchParams: Promise<Record<string, string | string[] | undefined>> }) {
  const session = await requireSession();
  const q = await searchParams;
  const status: DeadLetterStatus = DEAD_LETTER_STATUSES.includes(q["status"] as DeadLetterStatus) ? (q["status"] as DeadLetterStatus) : "pending";
  const client = db();
  const [{ dead_letters: entries }, breakers, agents] = await Promise.all([
    listDeadLetters(client, { status, limit: 100 }),
    listBreakers(client),
    client.from("agents").select("id").eq("enabled", true).order("id"),
  ]);
  const agentIds = (agents.data ?? []).map((a) => a.id);
  const csrf = { name: CSRF_FIELD, value: formToken(session) };

  return (
    <main>
      <h1>Failed work</h1>
      <section aria-labelledby="dependencies">
        <h2 id="dependencies">Dependencies</h2>
        {breakers.length === 0 ? (
          <p className="muted">Every dependency has answered so far.</p>
        ) : (
          <table data-testid="breakers">
            <thead>
              <tr>
                <th>Dependency</th>
                <th>State</th>
                <th>Since</th>
                <th>Failures</th>
                <th>Next probe</th>
                <th>Last error</th>
              </tr>
            </thead>
            <tbody>
              {breakers.map((b) => (
                <tr key={b.dependency} data-dependency={b.dependency} data-state={b.state}>
                  <td>{b.dependency}</td>
                  <td>
                    <span className={`badge ${b.state === "closed" ? "completed" : b.state === "open" ? "failed" : "waiting_dependency"}`}>{STATE_LABEL[b.state] ?? b.state}</span>
                  </td>
                  <td>{when(b.since)}</td>
                  <td>{b.consecutive_failures}</td>
                  <td>{b.next_probe_at ? when(b.next_probe_at) : "—"}</td>
                  <td>{b.last_error ? `${b.last_error} (${when(b.last_error_at)})` : "—"}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>

      <section aria-labelledby="dead-letters">
        <h2 id="dead-letters">
          Dead letters: {status} ({entries.length})
        </h2>
        <nav aria-label="Dead-letter status" className="muted">
          {DEAD_LETTER_STATUSES.map((s) => (
            <Link key={s} href={`/failed?status=${s}`} aria-current={s === status ? "page" : undefined} style={{ marginRight: "1rem" }}>
              {s}
            </Link>
          ))}
        </nav>
        {entries.length === 0 ? <p className="muted">Nothing here.</p> : null}
        {status === "pending" && entries.length > 0 ? <ReplaySelected formKey={newFormKey()} csrf={csrf} count={entries.length} /> : null}
        {entries.map((d) => (
          <article key={d.id} className="panel" data-dead-letter-id={d.id} aria-label={`Dead letter for task ${d.task_id.slice(0, 8)}`}>
            <h3>
              {status === "pending" ? (
                <input type="checkbox" name="ids" value={d.id} form="replay-selected" aria-label="Select for replay" style={{ marginRight: "0.5rem" }} />
              ) : null}
              <Link href={`/tasks/${d.task_id}`}>{d.agent}</Link>
              {d.stage ? ` · pipeline ${d.stage} stage` : ""} · {d.failure_kind.replace(/_/g, " ")}
            </h3>
            <p data-testid="error-in-words">{d.error_message}</p>
            <p className="muted">
              Failed in <code>{d.failed_step ?? "the run"}</code> after {d.attempts} attempt{d.attempts === 1 ? "" : "s"} · cost {usd(d.cost_micros)} · {when(d.created_at)}
            </p>
            <p className="muted">Asked: {d.prompt.length > 300 ? `${d.prompt.slice(0, 300)}…` : d.prompt}</p>
            {d.status === "replayed" && d.replayed_by ? (
              <p className="notice ok">
                Replayed as <Link href={`/tasks/${d.replayed_by}`}>task {d.replayed_by.slice(0, 8)}</Link> ({when(d.resolved_at)})
              </p>
            ) : null}
            {d.status === "discarded" ? <p className="notice">Discarded{d.discard_note ? `: ${d.discard_note}` : ""} ({when(d.resolved_at)})</p> : null}
            {d.status === "pending" ? <EntryForms id={d.id} prompt={d.prompt} agent={d.agent} agents={agentIds} formKey={newFormKey()} csrf={csrf} /> : null}
          </article>
        ))}
      </section>
    </main>
  );
}
