// Cancelling a task from its console page, on the real database, behind the console's session + CSRF guard.
import { afterAll, beforeAll, expect, test } from "vitest";
import { startRouteFixture, type RouteFixture } from "../../support/app-fixture";
import type { EventCapture } from "../../support/event-capture";
import type { TestSupabase } from "../../support/supabase";
import type * as Ops from "@/lib/console/operations";
import { configureConsole, form, sameOriginHeaders, sessionCookie, withToken } from "./helpers";

let fx: RouteFixture;
let sb: TestSupabase;
let events: EventCapture;
let ops: typeof Ops;

beforeAll(async () => {
  fx = await startRouteFixture();
  ({ sb, events } = fx);
  configureConsole();
  ops = await import("@/lib/console/operations");
});
afterAll(async () => {
  await fx?.stop();
});

async function newTask(): Promise<string> {
  const { data, error } = await sb.admin.from("tasks").insert({ agent_id: "research", prompt: "long night" }).select("id").single();
  if (error) throw error;
  return data.id;
}

test("the cancel form ends the task once, announces task/run.cancelled, and a second press says it had ended", async () => {
  const taskId = await newTask();
  const auth = sessionCookie();
  const ctx = { headers: sameOriginHeaders(), sessionCookie: auth.value, form: withToken(auth.session, { task_id: taskId }) };

  expect(await ops.cancelFromConsole(ctx, sb.admin)).toEqual({ ok: true, taskId });
  const { data } = await sb.admin.from("tasks").select("status,status_reason").eq("id", taskId).single();
  expect(data).toEqual({ status: "cancelled", status_reason: "cancelled from the console" });
  // The cancellation and its event were recorded together (the outbox); the action's relay then sends it.
  const { data: rows } = await sb.admin.from("outbox").select("event_id").eq("event_id", `task-cancelled-${taskId}`);
  expect(rows).toHaveLength(1);
  const { relayOutbox } = await import("@/inngest/outbox-relay");
  await relayOutbox({ db: sb.admin });
  expect(events.events.filter((e) => e.name === "task/run.cancelled").map((e) => [e.id, e.data])).toEqual([
    [`task-cancelled-${taskId}`, { task_id: taskId, reason: "cancelled from the console" }],
  ]);

  const again = await ops.cancelFromConsole(ctx, sb.admin);
  expect(again).toMatchObject({ ok: false, code: "conflict", error: "The task had already ended (cancelled)." });
});

test("without the CSRF token, from another site, or signed out, nothing is cancelled", async () => {
  const taskId = await newTask();
  const auth = sessionCookie();
  const refused = [
    await ops.cancelFromConsole({ headers: sameOriginHeaders(), sessionCookie: auth.value, form: form({ task_id: taskId }) }, sb.admin),
    await ops.cancelFromConsole(
      { headers: sameOriginHeaders({ origin: "https://evil.example", "sec-fetch-site": "cross-site" }), sessionCookie: auth.value, form: withToken(auth.session, { task_id: taskId }) },
      sb.admin,
    ),
    await ops.cancelFromConsole({ headers: sameOriginHeaders(), sessionCookie: null, form: withToken(auth.session, { task_id: taskId }) }, sb.admin),
  ];
  expect(refused.map((r) => r.ok)).toEqual([false, false, false]);
  const { data } = await sb.admin.from("tasks").select("status").eq("id", taskId).single();
  expect(data!.status).toBe("queued");
});
