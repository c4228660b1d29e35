// The landing page. It shows no data: every read of tasks goes through the authenticated API.
export default function Home() {
  return (
    <main>
      <h1>Nightshift</h1>
      <p>Background AI agents: queued, checkpointed every step, kept inside their daily budgets.</p>
      <h2>Queue work</h2>
      <pre style={{ background: "#f4f4f6", padding: "1rem", overflowX: "auto" }}>
        {`curl -X POST $URL/api/tasks \\
  -H "Authorization: Bearer $NIGHTSHIFT_API_KEY" \\
  -H "Content-Type: application/json" \\
  -H "Idempotency-Key: nightly-2026-11-26" \\
  -d '{"agent":"research","prompt":"Summarize this week in async agents"}'`}
      </pre>
      <p>
        Then poll the <code>status_url</code> it returns (<code>GET /api/tasks/:id</code>).
      </p>
    </main>
  );
}
