// A raised cap wakes the agent's waiting tasks through the outbox (budget/agent.freed, recorded by the agents
// trigger). It acts on runs already under way, so the relay claims it before a burst of new work recorded earlier —
// like a slot's hand-over (20261202100000_outbox_wakeup_budget_freed.sql).
import { afterAll, beforeAll, expect, test } from "vitest";
import { createTestSupabase, type TestSupabase } from "../../support/supabase";
import { sql } from "../db/sql";
import { createAgent, createTask, setCap } from "./helpers";

let sb: TestSupabase;
beforeAll(async () => {
  sb = await createTestSupabase();
});
afterAll(async () => {
  await sb?.stop();
});

test("budget/agent.freed from a raised cap is claimed before a burst of new work recorded earlier", async () => {
  const agent = await createAgent(sb.databaseUrl, { capMicros: 10_000 });
  const task = await createTask(sb.databaseUrl, agent);
  await sql(sb.databaseUrl, `update public.tasks set status = 'waiting_budget' where id = $1`, [task]);
  await sql(sb.databaseUrl, `update public.outbox set sent_at = now() where sent_at is null`);
  // 150 events that start new work, then the cap is raised (the trigger records the wake-up), then more new work.
  const burst = Array.from({ length: 150 }, (_, i) => ({ name: "test/work.requested", data: { i }, id: `freed-burst-${i}` }));
  const { error } = await sb.admin.rpc("outbox_record_many", { p_events: burst as never });
  expect(error).toBeNull();
  await setCap(sb.databaseUrl, agent, 50_000);
  const { error: e2 } = await sb.admin.rpc("outbox_record_many", { p_events: [{ name: "test/work.requested", data: {}, id: "freed-late" }] as never });
  expect(e2).toBeNull();

  const { data, error: e3 } = await sb.admin.rpc("outbox_claim", { p_limit: 10, p_lease_seconds: 30 });
  expect(e3).toBeNull();
  const claimed = (data ?? []) as Array<{ name: string; data: { agent_id?: string; reason?: string } }>;
  expect(claimed).toHaveLength(10);
  // The wake-up leads the claim although 150 older rows wait; the rest is the oldest new work.
  expect(claimed[0]).toMatchObject({ name: "budget/agent.freed", data: { agent_id: agent, reason: "cap_raised" } });
  expect(claimed.slice(1).every((r) => r.name === "test/work.requested")).toBe(true);
});
