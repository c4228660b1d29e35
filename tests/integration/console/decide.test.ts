// Decisions from the review page on the real database: through decideApproval's compare-and-set, with the
// console's session + CSRF guard in front. decided/repeat succeed; conflict and expired name the decision that stands.
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startRouteFixture, type RouteFixture } from "../../support/app-fixture";
import type { EventCapture } from "../../support/event-capture";
import type { TestSupabase } from "../../support/supabase";
import { until } from "../../support/engine-harness";
import type * as Ops from "@/lib/console/operations";
import type * as Approvals from "@/lib/approvals";
import { configureConsole, form, sameOriginHeaders, sessionCookie, withToken } from "./helpers";

let fx: RouteFixture;
let sb: TestSupabase;
let events: EventCapture;
let ops: typeof Ops;
let approvals: typeof Approvals;

beforeAll(async () => {
  fx = await startRouteFixture();
  ({ sb, events } = fx);
  configureConsole();
  await import("@/inngest/outbox-relay"); // registers the relay, as the app does when it loads
  ops = await import("@/lib/console/operations");
  approvals = await import("@/lib/approvals");
});

afterAll(async () => {
  await fx?.stop();
});

/** A task waiting on a visible approval, as the run-task function leaves it. */
async function pendingApproval(opts: { timeoutSeconds?: number; requestedAt?: Date } = {}): Promise<{ taskId: string; approvalId: string }> {
  const { data: task, error } = await sb.admin.from("tasks").insert({ agent_id: "content", prompt: "Draft a post" }).select("id").single();
  if (error) throw error;
  const at = opts.requestedAt ?? new Date();
  const row = await approvals.requestApproval(
    sb.admin,
    { taskId: task.id, stage: "draft", revision: 1, draft: { text: "Hello world" }, timeoutSeconds: opts.timeoutSeconds ?? 86_400, autoAction: "reject" },
    at,
  );
  await approvals.publishApproval(sb.admin, row.id, at);
  return { taskId: task.id, approvalId: row.id };
}

function ctx(fields: Record<string, string>, auth = sessionCookie()) {
  return { headers: sameOriginHeaders(), sessionCookie: auth.value, form: withToken(auth.session, fields) };
}

describe("deciding from the review page", () => {
  test("approve: decided once, the wake-up event is sent, a repeat is still a success", async () => {
    const { taskId, approvalId } = await pendingApproval();
    const before = events.events.length;
    const res = await ops.decide(ctx({ approval_id: approvalId, decision: "approve" }), sb.admin);
    expect(res).toEqual({ ok: true, outcome: "decided", status: "approved", taskId });
    const { data } = await sb.admin.from("approvals").select("status,decided_by,decided_via").eq("id", approvalId).single();
    expect(data).toEqual({ status: "approved", decided_by: ops.CONSOLE_ACTOR, decided_via: "console" });
    await until(() => events.events.length > before, { message: "the wake-up was never relayed" });
    expect(events.events.slice(before).map((e) => e.name)).toEqual(["approval/decision.made"]);
    expect(await ops.decide(ctx({ approval_id: approvalId, decision: "approve" }), sb.admin)).toMatchObject({ ok: true, outcome: "repeat" });
  });

  test("a second, different decision (another tab) is refused and names the decision that stands", async () => {
    const { approvalId } = await pendingApproval();
    expect(await ops.decide(ctx({ approval_id: approvalId, decision: "reject", notes: "Off brand" }), sb.admin)).toMatchObject({
      ok: true,
      status: "rejected",
    });
    const res = await ops.decide(ctx({ approval_id: approvalId, decision: "approve" }), sb.admin);
    expect(res).toMatchObject({ ok: false, outcome: "conflict", status: "rejected" });
    expect(!res.ok && res.error).toMatch(/^Already decided: rejected by console:operator/);
  });

  test("approve with changes needs the changes written down", async () => {
    const { approvalId } = await pendingApproval();
    const res = await ops.decide(ctx({ approval_id: approvalId, decision: "approve_with_changes", notes: "  " }), sb.admin);
    expect(res).toMatchObject({ ok: false, code: "invalid" });
    expect(!res.ok && res.error).toMatch(/Write the changes/);
    expect(
      await ops.decide(ctx({ approval_id: approvalId, decision: "approve_with_changes", notes: "Shorter title" }), sb.admin),
    ).toMatchObject({ ok: true, status: "approved_with_changes" });
    const { data } = await sb.admin.from("approvals").select("notes").eq("id", approvalId).single();
    expect(data?.notes).toBe("Shorter title");
  });

  test("after the deadline the decision is refused as expired", async () => {
    const { approvalId } = await pendingApproval({ timeoutSeconds: 60, requestedAt: new Date(Date.now() - 120_000) });
    const res = await ops.decide(ctx({ approval_id: approvalId, decision: "approve" }), sb.admin);
    expect(res).toMatchObject({ ok: false, outcome: "expired", status: "expired" });
    expect(!res.ok && res.error).toMatch(/Too late/);
  });

  test("a cross-site POST, one without the token, or one without a session decides nothing", async () => {
    const { approvalId } = await pendingApproval();
    const auth = sessionCookie();
    const fields = { approval_id: approvalId, decision: "approve" };
    const evil = new Headers({ host: "console.test:3000", origin: "https://evil.example", "sec-fetch-site": "cross-site" });
    expect(await ops.decide({ headers: evil, sessionCookie: auth.value, form: withToken(auth.session, fields) }, sb.admin)).toMatchObject({ code: "csrf" });
    expect(await ops.decide({ headers: sameOriginHeaders(), sessionCookie: auth.value, form: form(fields) }, sb.admin)).toMatchObject({ code: "csrf" });
    expect(await ops.decide({ headers: sameOriginHeaders(), sessionCookie: null, form: withToken(auth.session, fields) }, sb.admin)).toMatchObject({
      code: "unauthenticated",
    });
    const { data } = await sb.admin.from("approvals").select("status").eq("id", approvalId).single();
    expect(data?.status).toBe("pending");
  });

  test("an unknown or malformed approval id is answered, not thrown", async () => {
    expect(await ops.decide(ctx({ approval_id: "not-a-uuid", decision: "approve" }), sb.admin)).toMatchObject({ ok: false, outcome: "not_found" });
    expect(await ops.decide(ctx({ approval_id: "7b0f6a52-3a8e-4c52-9d3a-2d1c1f0e9a11", decision: "approve" }), sb.admin)).toMatchObject({
      ok: false,
      outcome: "not_found",
    });
  });
});
