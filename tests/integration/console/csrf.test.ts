// Console mutations on the real database and the real Inngest SDK (sending to a recording event API): a POST
// with a foreign Origin, without the session's CSRF token, with another session's token or without a session
// changes nothing; a genuine one queues the task through submitTask, once per form.
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startRouteFixture, type RouteFixture } from "../../support/app-fixture";
import type { EventCapture } from "../../support/event-capture";
import type { TestSupabase } from "../../support/supabase";
import { until } from "../../support/engine-harness";
import { CSRF_FIELD } from "@/lib/console/csrf";
import type { queueWork as QueueWork } from "@/lib/console/operations";
import { configureConsole, form, sameOriginHeaders, sessionCookie, withToken } from "./helpers";

let fx: RouteFixture;
let sb: TestSupabase;
let events: EventCapture;
let queueWork: typeof QueueWork;

beforeAll(async () => {
  fx = await startRouteFixture();
  ({ sb, events } = fx);
  configureConsole();
  await import("@/inngest/outbox-relay"); // registers the relay, as the app does when it loads
  ({ queueWork } = await import("@/lib/console/operations"));
});

afterAll(async () => {
  await fx?.stop();
});

async function taskCount(): Promise<number> {
  const { count, error } = await sb.admin.from("tasks").select("id", { count: "exact", head: true });
  if (error) throw error;
  return count ?? 0;
}

const fields = (key: string) => ({ agent: "research", prompt: "Compare three durable execution engines", idempotency_key: key });

describe("queue work from the console", () => {
  test("a same-origin POST with the session's token queues one task through submitTask (api_key_id null)", async () => {
    const { session, value } = sessionCookie();
    const before = events.events.length;
    const res = await queueWork(
      { headers: sameOriginHeaders(), sessionCookie: value, form: withToken(session, { ...fields("console-a"), require_approval: "on" }) },
      sb.admin,
    );
    expect(res).toMatchObject({ ok: true, replayed: false });
    if (!res.ok) return;
    const { data } = await sb.admin.from("tasks").select("agent_id,prompt,api_key_id,require_approval,idempotency_key,status").eq("id", res.taskId).single();
    expect(data).toEqual({
      agent_id: "research",
      prompt: "Compare three durable execution engines",
      api_key_id: null,
      require_approval: true,
      idempotency_key: "console-a",
      status: "queued",
    });
    // Recorded with the task; the outbox relay (loaded with the app's functions) sends it in the background.
    await until(() => events.events.length > before, { message: "the start event was never relayed" });
    expect(events.events.slice(before)).toEqual([
      expect.objectContaining({ name: "task/run.requested", id: `task-run-${res.taskId}`, data: { task_id: res.taskId, agent: "research" } }),
    ]);
  });

  test("submitting the same form twice (double click, retry) queues it once", async () => {
    const { session, value } = sessionCookie();
    const ctx = () => ({ headers: sameOriginHeaders(), sessionCookie: value, form: withToken(session, fields("console-double")) });
    const before = await taskCount();
    const [a, b] = await Promise.all([queueWork(ctx(), sb.admin), queueWork(ctx(), sb.admin)]);
    expect(a.ok && b.ok).toBe(true);
    if (a.ok && b.ok) expect(a.taskId).toBe(b.taskId);
    expect(await taskCount()).toBe(before + 1);
  });

  test("a POST with a foreign Origin is refused and records nothing", async () => {
    const { session, value } = sessionCookie();
    const before = await taskCount();
    const evil = new Headers({ host: "console.test:3000", origin: "https://evil.example", "sec-fetch-site": "cross-site" });
    const res = await queueWork({ headers: evil, sessionCookie: value, form: withToken(session, fields("console-evil")) }, sb.admin);
    expect(res).toMatchObject({ ok: false, code: "csrf" });
    // Origin alone (an older browser without Sec-Fetch-Site) is enough to refuse.
    const evil2 = new Headers({ host: "console.test:3000", origin: "http://console.test:3000.evil.example" });
    expect(await queueWork({ headers: evil2, sessionCookie: value, form: withToken(session, fields("console-evil2")) }, sb.admin)).toMatchObject({
      ok: false,
      code: "csrf",
    });
    expect(await taskCount()).toBe(before);
  });

  test("a same-origin POST without the token, with a wrong token or another session's token is refused", async () => {
    const { session, value } = sessionCookie();
    const other = sessionCookie();
    const before = await taskCount();
    const tries = [
      form(fields("console-no-token")),
      form({ ...fields("console-empty-token"), [CSRF_FIELD]: "" }),
      form({ ...fields("console-bad-token"), [CSRF_FIELD]: "A".repeat(43) }),
      withToken(other.session, fields("console-other-token")),
    ];
    for (const f of tries) {
      const res = await queueWork({ headers: sameOriginHeaders(), sessionCookie: value, form: f }, sb.admin);
      expect(res).toMatchObject({ ok: false, code: "csrf" });
      if (!res.ok) expect(res.error).toMatch(/security token/);
    }
    expect(session.sid).not.toBe(other.session.sid);
    expect(await taskCount()).toBe(before);
  });

  test("without a session (none, tampered, expired) nothing is queued", async () => {
    const { session, value } = sessionCookie();
    const expired = sessionCookie(undefined, Date.now() - 48 * 3_600_000);
    const before = await taskCount();
    for (const cookie of [null, `${value}x`, expired.value]) {
      const res = await queueWork({ headers: sameOriginHeaders(), sessionCookie: cookie, form: withToken(session, fields("console-anon")) }, sb.admin);
      expect(res).toMatchObject({ ok: false, code: "unauthenticated" });
    }
    expect(await taskCount()).toBe(before);
  });

  test("invalid input is answered with a message, not an exception", async () => {
    const { session, value } = sessionCookie();
    const ctx = (f: Record<string, string>) => ({ headers: sameOriginHeaders(), sessionCookie: value, form: withToken(session, f) });
    expect(await queueWork(ctx({ ...fields("console-empty"), prompt: "   " }), sb.admin)).toMatchObject({ ok: false, error: "Write what the agent should do" });
    expect(await queueWork(ctx({ ...fields("console-ghost"), agent: "ghost" }), sb.admin)).toMatchObject({
      ok: false,
      error: expect.stringMatching(/unknown or disabled agent 'ghost'/),
    });
    // The same form key with a different prompt: the form was already used.
    expect(await queueWork(ctx({ ...fields("console-a"), prompt: "something else" }), sb.admin)).toMatchObject({
      ok: false,
      error: expect.stringMatching(/already submitted/),
    });
  });
});
