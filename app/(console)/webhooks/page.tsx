// Webhooks: the inbound sources with their refusal counters (a refused delivery records nothing else), whether
// their secret variables are set (never the secrets), enable/disable; and the peers tasks may hand results to.
import { CSRF_FIELD } from "@/lib/console/csrf";
import { formToken, requireSession } from "@/lib/console/server";
import { db } from "@/lib/db/server";
import { listPeers } from "@/lib/webhooks/peers";
import { listWebhookSources } from "@/lib/webhooks/sources";
import { webhookSourceAction } from "./actions";

export const dynamic = "force-dynamic";
export const metadata = { title: "Webhooks · Nightshift" };

const REASONS: Record<string, string> = {
  bad_signature: "bad signature",
  stale_timestamp: "stale timestamp",
  missing_headers: "missing headers",
  too_large: "too large",
  unprocessable: "unusable payload",
  invalid_json: "not JSON",
  disabled: "while disabled",
};

export default async function WebhooksPage() {
  const session = await requireSession();
  const [{ sources, unknown_source_refusals }, peers] = await Promise.all([listWebhookSources(db()), listPeers(db())]);
  const token = formToken(session);
  return (
    <main>
      <h1>Webhooks</h1>
      <p className="muted">
        Signed deliveries (Standard Webhooks) to <code>/api/webhooks/&lt;source&gt;</code> start tasks. A refused delivery is only counted here.
        Manage sources with <code>/api/webhook-sources</code>.
      </p>
      <h2>Sources</h2>
      {sources.length === 0 ? (
        <p className="muted">No webhook sources yet.</p>
      ) : (
        <table className="cards" aria-label="Webhook sources">
          <thead>
            <tr>
              <th>Source</th>
              <th>Secrets</th>
              <th>Refused</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {sources.map((s) => (
              <tr key={s.name} data-source={s.name}>
                <td>
                  <b>{s.name}</b> {s.enabled ? null : <span className="badge cancelled">disabled</span>}
                  <div className="muted">
                    {s.agent} · {s.mode}
                    {s.require_approval ? " · needs approval" : ""}
                    {s.description ? ` · ${s.description}` : ""}
                  </div>
                </td>
                <td data-label="Secrets">
                  {s.secrets_set} of {s.secret_env_names.length} set
                  <div className="muted">{s.secret_env_names.join(", ")}</div>
                </td>
                <td data-label="Refused" data-refused={s.refused_total}>
                  {s.refused_total === 0
                    ? "none"
                    : Object.entries(s.refusals)
                        .map(([reason, n]) => `${n} ${REASONS[reason] ?? reason}`)
                        .join(", ")}
                  {s.last_refused_at ? <div className="muted">last {new Date(s.last_refused_at).toISOString().slice(0, 16).replace("T", " ")} UTC</div> : null}
                </td>
                <td>
                  <form action={webhookSourceAction} style={{ display: "inline" }}>
                    <input type="hidden" name={CSRF_FIELD} value={token} />
                    <input type="hidden" name="source" value={s.name} />
                    <button type="submit" name="op" value={s.enabled ? "disable" : "enable"}>
                      {s.enabled ? "Disable" : "Enable"}
                    </button>
                  </form>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <p className="muted" data-unknown-refused={unknown_source_refusals}>
        Deliveries to unknown source names: {unknown_source_refusals}.
      </p>
      <h2>Peers</h2>
      <p className="muted">
        Other Nightshift deployments a task can name as its <code>next_hop</code>: its result goes there as a signed webhook when it completes.
      </p>
      {peers.length === 0 ? (
        <p className="muted">No peers configured.</p>
      ) : (
        <table className="cards" aria-label="Peers">
          <thead>
            <tr>
              <th>Peer</th>
              <th>Delivers to</th>
              <th>Secret</th>
            </tr>
          </thead>
          <tbody>
            {peers.map((p) => (
              <tr key={p.name}>
                <td>
                  <b>{p.name}</b> {p.enabled ? null : <span className="badge cancelled">disabled</span>}
                  {p.description ? <div className="muted">{p.description}</div> : null}
                </td>
                <td data-label="Delivers to">
                  <code>{p.url}</code>
                </td>
                <td data-label="Secret">
                  <code>{p.secret_env_name}</code> {p.secret_set ? "set" : <span className="badge failed">not set</span>}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </main>
  );
}
