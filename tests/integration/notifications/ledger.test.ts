// The per-(notification, channel) ledger in Postgres, through PostgREST and supabase-js: a key is recorded once, a
// channel is claimed by exactly one of many concurrent claimers, a sent channel is never claimed again, a stale
// claimer cannot undo a newer claim, and a round concludes from the rows.
import { afterAll, beforeAll, expect, test } from "vitest";
import { createTestSupabase, type TestSupabase } from "../../support/supabase";
import { sql } from "../db/sql";

let sb: TestSupabase;
let store: typeof import("@/lib/notifications/store");

beforeAll(async () => {
  sb = await createTestSupabase();
  store = await import("@/lib/notifications/store");
});
afterAll(async () => {
  await sb?.stop();
});

const record = (key: string, extra: Partial<Parameters<typeof store.recordNotification>[1]> = {}) =>
  store.recordNotification(sb.admin, { kind: "task_finished", dedupeKey: key, title: "T", body: "B", ...extra });

test("record_notification inserts once per key, concurrently too; the first writer's content wins", async () => {
  const results = await Promise.all(Array.from({ length: 20 }, (_, i) => record("ledger:once", { title: `T${i}` })));
  expect(results.filter((r) => r.created)).toHaveLength(1);
  expect(new Set(results.map((r) => r.id)).size).toBe(1);
  const [row] = await sql<{ n: string }>(sb.databaseUrl, "select count(*)::text as n from public.notifications where dedupe_key = 'ledger:once'");
  expect(row!.n).toBe("1");
  const winner = results.find((r) => r.created)!;
  const { data } = await sb.admin.from("notifications").select("title").eq("id", winner.id).single();
  expect(data!.title).toMatch(/^T\d+$/);
});

test("an unknown agent or task is stored as null rather than failing the caller", async () => {
  const r = await record("ledger:unknown-refs", { agentId: "no-such-agent", taskId: "00000000-0000-4000-8000-0000000000aa" });
  const { data } = await sb.admin.from("notifications").select("agent_id,task_id").eq("id", r.id).single();
  expect(data).toEqual({ agent_id: null, task_id: null });
});

test("of 20 concurrent claims of one channel exactly one wins; once sent, the channel is never claimed again", async () => {
  const { id } = await record("ledger:claims");
  const claims = await Promise.all(Array.from({ length: 20 }, () => store.claimDelivery(sb.admin, id, "slack", 60)));
  const won = claims.filter((c) => c.outcome === "claimed");
  expect(won).toHaveLength(1);
  expect(claims.filter((c) => c.outcome === "in_progress")).toHaveLength(19);

  expect(await store.completeDelivery(sb.admin, id, "slack", { providerId: null, status: 200 })).toBe(true);
  expect(await store.completeDelivery(sb.admin, id, "slack", { providerId: null, status: 200 })).toBe(false);
  const again = await Promise.all(Array.from({ length: 5 }, () => store.claimDelivery(sb.admin, id, "slack", 60)));
  expect(again.every((c) => c.outcome === "sent")).toBe(true);
  // A failure recorded without a claim never touches a sent channel.
  expect(await store.failDelivery(sb.admin, id, "slack", { error: "late failure" })).toBe(false);
});

test("a retrying channel is claimed again; a stale claim token cannot record over the new claim; an expired lease is re-claimed", async () => {
  const { id } = await record("ledger:retry");
  const first = await store.claimDelivery(sb.admin, id, "telegram", 60);
  if (first.outcome !== "claimed") throw new Error("expected a claim");
  expect(await store.failDelivery(sb.admin, id, "telegram", { error: "503", token: first.token, retry: true })).toBe(true);
  const second = await store.claimDelivery(sb.admin, id, "telegram", 60);
  if (second.outcome !== "claimed") throw new Error("expected a second claim");
  expect(second.attempts).toBe(2);
  expect(await store.failDelivery(sb.admin, id, "telegram", { error: "stale", token: first.token })).toBe(false);
  // No token: a live claim is left alone.
  expect(await store.failDelivery(sb.admin, id, "telegram", { error: "no token" })).toBe(false);

  // The claimer crashed: once its lease has expired, the channel can be claimed again.
  await sql(sb.databaseUrl, "update public.notification_deliveries set lease_expires_at = now() - interval '1 second' where notification_id = $1", [id]);
  const third = await store.claimDelivery(sb.admin, id, "telegram", 60);
  expect(third.outcome).toBe("claimed");
});

test("finish_notification: delivered when any channel went out; last_error when all failed; nothing while one is in flight", async () => {
  const a = await record("ledger:finish-a");
  await store.failDelivery(sb.admin, a.id, "telegram", { error: "Telegram answered 400: chat not found" });
  const inFlight = await store.claimDelivery(sb.admin, a.id, "email", 60);
  expect(await store.finishNotification(sb.admin, a.id)).toMatchObject({ concluded: false, in_flight: 1, failed: 1 });
  if (inFlight.outcome !== "claimed") throw new Error("expected a claim");
  await store.failDelivery(sb.admin, a.id, "email", { error: "Resend answered 422: invalid to", token: inFlight.token });
  const done = await store.finishNotification(sb.admin, a.id);
  expect(done).toMatchObject({ concluded: true, delivered_at: null, failed: 2 });
  expect(done.last_error).toBe("email: Resend answered 422: invalid to; telegram: Telegram answered 400: chat not found");

  const b = await record("ledger:finish-b");
  await store.failDelivery(sb.admin, b.id, "telegram", { error: "x" });
  const c = await store.claimDelivery(sb.admin, b.id, "slack", 60);
  if (c.outcome !== "claimed") throw new Error("expected a claim");
  await store.completeDelivery(sb.admin, b.id, "slack", { providerId: null, status: 200 });
  const delivered = await store.finishNotification(sb.admin, b.id);
  expect(delivered).toMatchObject({ concluded: true, last_error: null, sent: 1, failed: 1 });
  expect(delivered.delivered_at).not.toBeNull();

  const none = await record("ledger:finish-none");
  expect(await store.finishNotification(sb.admin, none.id, "no channel configured")).toMatchObject({
    concluded: true,
    last_error: "no channel configured",
  });
  // A concluded notification is never swept.
  const swept = await store.claimStale(sb.admin, {
    minAgeSeconds: 0,
    maxAgeSeconds: 3600,
    limit: 100,
    retrySeconds: 60,
    now: new Date(Date.now() + 1000),
  });
  const ids = swept.map((s) => s.notification_id);
  expect(ids).not.toContain(a.id);
  expect(ids).not.toContain(b.id);
  expect(ids).not.toContain(none.id);
});

test("the anon key can neither read deliveries nor call the ledger functions", async () => {
  const anon = sb.client(sb.anonKey);
  const { id } = await record("ledger:anon");
  const read = await anon.from("notification_deliveries").select("*");
  if (read.error) expect(read.error.code).toBe("42501");
  else expect(read.data).toEqual([]);
  const rpc = await anon.rpc("claim_notification_delivery", { p_notification_id: id, p_channel: "slack" });
  expect(rpc.error?.code).toBe("42501");
});
