// The webhooks a task sent (its callback, a peer hop) and every attempt of each: when, the answer, the outcome.
import { when } from "@/lib/console/format";
import { db } from "@/lib/db/server";
import { taskDeliveries } from "@/lib/webhooks/outbound";

export async function Deliveries({ taskId }: { taskId: string }) {
  const deliveries = await taskDeliveries(db(), taskId);
  if (deliveries.length === 0) return null;
  return (
    <section aria-labelledby="deliveries">
      <h2 id="deliveries">Webhook deliveries</h2>
      {deliveries.map((d) => (
        <div key={d.id} data-delivery={d.message_id}>
          <p>
            <span className={`badge ${d.status === "delivered" ? "completed" : d.status}`}>{d.status}</span> {d.kind} <code>{d.event_type}</code> to{" "}
            <code>{safeHost(d.url)}</code> · webhook-id <code>{d.message_id}</code>
          </p>
          <table className="cards" aria-label={`Attempts of ${d.message_id}`}>
            <thead>
              <tr>
                <th>Attempt</th>
                <th>At</th>
                <th>Answer</th>
                <th>Outcome</th>
                <th className="num">Duration</th>
              </tr>
            </thead>
            <tbody>
              {d.webhook_delivery_attempts.map((a) => (
                <tr key={a.attempt}>
                  <td>{a.attempt}</td>
                  <td data-label="At">{when(a.at)}</td>
                  <td data-label="Answer">{a.status_code ?? a.error ?? "—"}</td>
                  <td data-label="Outcome">{a.outcome}</td>
                  <td className="num" data-label="Duration">
                    {a.duration_ms} ms
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ))}
    </section>
  );
}

/** Only the host: a callback URL's path or query may carry a token. */
function safeHost(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return "(invalid URL)";
  }
}
