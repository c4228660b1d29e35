// The tasks API route handlers, on the real embedded Postgres + PostgREST through supabase-js, with the
// real Inngest SDK sending to a recording event API.
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startRouteFixture, type RouteFixture } from "../../support/app-fixture";
import type { EventCapture } from "../../support/event-capture";
import { until } from "../../support/engine-harness";
import type { TestSupabase } from "../../support/supabase";

let fx: RouteFixture;
let sb: TestSupabase;
let events: EventCapture;
let apiKey: string;
let tasksRoute: typeof import("@/app/api/tasks/route");
let taskRoute: typeof import("@/app/api/tasks/[id]/route");

beforeAll(async () => {
  // Routes do not run agents: no engine, no double; the events they send are recorded.
  fx = await startRouteFixture();
  ({ sb, events } = fx);
  const { createApiKey } = await import("@/lib/api-keys");
  apiKey = (await createApiKey(sb.admin, "route tests")).key;
  tasksRoute = await import("@/app/api/tasks/route");
  taskRoute = await import("@/app/api/tasks/[id]/route");
});

afterAll(async () => {
  await fx?.stop();
});

function post(body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  const text = typeof body === "string" ? body : JSON.stringify(body);
  return tasksRoute.POST(
    new Request("http://localhost:3000/api/tasks", {
      method: "POST",
      headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json", ...headers },
      body: text,
    }),
  );
}

function getTask(id: string, key = apiKey): Promise<Response> {
  return taskRoute.GET(new Request(`http://localhost:3000/api/tasks/${id}`, { headers: { authorization: `Bearer ${key}` } }), {
    params: Promise.resolve({ id }),
  });
}

async function countTasks(): Promise<number> {
  const { count, error } = await sb.admin.from("tasks").select("id", { count: "exact", head: true });
  if (error) throw error;
  return count ?? 0;
}

describe("POST /api/tasks", () => {
  test("202 with task_id, status_url and Location; one row and one event with the task id", async () => {
    const before = events.events.length;
    const res = await post({ agent: "research", prompt: "Find three papers on durable execution" });
    expect(res.status).toBe(202);
    const body = (await res.json()) as { task_id: string; status: string; status_url: string };
    expect(body.status).toBe("queued");
    expect(body.status_url).toBe(`/api/tasks/${body.task_id}`);
    expect(res.headers.get("location")).toBe(`http://localhost:3000/api/tasks/${body.task_id}`);
    // The event is recorded with the task and relayed after the response.
    await until(() => events.events.length > before, { message: "the start event was never relayed" });
    const sent = events.events.slice(before);
    expect(sent).toHaveLength(1);
    expect(sent[0]).toMatchObject({
      name: "task/run.requested",
      id: `task-run-${body.task_id}`,
      data: { task_id: body.task_id, agent: "research" },
    });
    const { data } = await sb.admin.from("tasks").select("status,agent_id,prompt").eq("id", body.task_id).single();
    expect(data).toEqual({ status: "queued", agent_id: "research", prompt: "Find three papers on durable execution" });
  });

  test("401 without a key, with a malformed key, with a wrong secret, and with a revoked key", async () => {
    const bodies = [
      await tasksRoute.POST(
        new Request("http://x/api/tasks", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ agent: "research", prompt: "x" }),
        }),
      ),
      await post({ agent: "research", prompt: "x" }, { authorization: "Bearer nope" }),
      await post({ agent: "research", prompt: "x" }, { authorization: `Bearer ${apiKey.slice(0, -4)}AAAA` }),
    ];
    const { createApiKey } = await import("@/lib/api-keys");
    const revoked = await createApiKey(sb.admin, "revoked");
    await sb.admin.from("api_keys").update({ revoked_at: new Date().toISOString() }).eq("id", revoked.id);
    bodies.push(await post({ agent: "research", prompt: "x" }, { authorization: `Bearer ${revoked.key}` }));
    for (const res of bodies) {
      expect(res.status).toBe(401);
      expect(res.headers.get("www-authenticate")).toContain("Bearer");
      const json = (await res.json()) as { error: { code: string } };
      expect(json.error.code).toBe("unauthorized");
    }
  });

  test("a wrong, revoked or malformed key is a 401 even when the request is also invalid (not 400/413/415 first)", async () => {
    const { createApiKey } = await import("@/lib/api-keys");
    const revoked = await createApiKey(sb.admin, "revoked, invalid request");
    await sb.admin.from("api_keys").update({ revoked_at: new Date().toISOString() }).eq("id", revoked.id);
    const before = await countTasks();
    for (const key of [revoked.key, `${apiKey.slice(0, -4)}AAAA`, "nope"]) {
      const authorization = `Bearer ${key}`;
      const answers = [
        await post({}, { authorization }),
        await post({ agent: "research", prompt: "x", colour: "blue" }, { authorization }),
        await post("{not json", { authorization }),
        await post({ agent: "research", prompt: "x" }, { authorization, "content-type": "text/plain" }),
        await post({ agent: "research", prompt: "x" }, { authorization, "idempotency-key": "with space" }),
        await post({ agent: "research", prompt: "x".repeat(300 * 1024) }, { authorization }),
      ];
      for (const res of answers) {
        expect(res.status).toBe(401);
        expect(((await res.json()) as { error: { code: string } }).error.code).toBe("unauthorized");
      }
    }
    // The live key still gets the validation errors.
    expect((await post({})).status).toBe(400);
    expect((await post({ agent: "research", prompt: "x".repeat(300 * 1024) })).status).toBe(413);
    expect(await countTasks()).toBe(before);
  });

  test.each([
    ["missing prompt", { agent: "research" }, "prompt"],
    ["empty prompt", { agent: "research", prompt: "   " }, "prompt"],
    ["unknown agent", { agent: "astrologer", prompt: "x" }, "agent"],
    ["agent of the wrong type", { agent: 7, prompt: "x" }, "agent"],
    ["prompt of the wrong type", { agent: "research", prompt: ["x"] }, "prompt"],
    ["priority not an integer", { agent: "research", prompt: "x", priority: 1.5 }, "priority"],
    ["mode not allowed", { agent: "research", prompt: "x", mode: "later" }, "mode"],
    ["require_approval not boolean", { agent: "research", prompt: "x", require_approval: "yes" }, "require_approval"],
    ["callback_url not a URL", { agent: "research", prompt: "x", callback_url: "ftp://x" }, "callback_url"],
    ["unknown field", { agent: "research", prompt: "x", colour: "blue" }, "colour"],
    ["a deadline without a time zone", { agent: "research", prompt: "x", deadline: "2026-11-30T07:00:00" }, "deadline"],
    ["prompt over the limit", { agent: "research", prompt: "y".repeat(100_001) }, "prompt"],
  ])("400 for %s, naming the field", async (_name, body, field) => {
    const before = await countTasks();
    const eventsBefore = events.events.length;
    const res = await post(body);
    expect(res.status).toBe(400);
    const json = (await res.json()) as { error: { code: string; message: string; details: { field: string }[] } };
    expect(json.error.code).toBe("invalid_request");
    expect(json.error.details.map((d) => d.field)).toContain(field);
    expect(json.error.message).toContain(field);
    expect(await countTasks()).toBe(before);
    expect(events.events.length).toBe(eventsBefore);
  });

  test("400 for a body that is not JSON or not an object", async () => {
    expect((await post("{not json")).status).toBe(400);
    expect((await post("")).status).toBe(400);
    expect((await post("[1,2]")).status).toBe(400);
  });

  test("413 over 256 KB, by declared length and by streamed length", async () => {
    const big = JSON.stringify({ agent: "research", prompt: "z".repeat(300 * 1024) });
    const res = await post(big);
    expect(res.status).toBe(413);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("payload_too_large");
    const streamed = await tasksRoute.POST(
      new Request("http://x/api/tasks", {
        method: "POST",
        headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
        body: new ReadableStream({
          start(c) {
            for (let i = 0; i < 20; i++) c.enqueue(new TextEncoder().encode("a".repeat(16 * 1024)));
            c.close();
          },
        }),
        duplex: "half",
      } as RequestInit),
    );
    expect(streamed.status).toBe(413);
  });

  test("415 when the body is not declared as JSON", async () => {
    const res = await post(JSON.stringify({ agent: "research", prompt: "x" }), { "content-type": "text/plain" });
    expect(res.status).toBe(415);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("unsupported_media_type");
  });

  test("a repeated Idempotency-Key returns the same task_id with one row and one event", async () => {
    const before = await countTasks();
    const eventsBefore = events.events.length;
    const body = { agent: "content", prompt: "Draft a post about checkpoints", priority: 3 };
    // Key order differs: the same request, written differently, is still the same request.
    const reordered = { priority: 3, prompt: "Draft a post about checkpoints", agent: "content" };
    const responses = await Promise.all([
      post(body, { "idempotency-key": "draft-42" }),
      post(reordered, { "idempotency-key": "draft-42" }),
      post(body, { "idempotency-key": "draft-42" }),
    ]);
    const ids = new Set<string>();
    for (const r of responses) {
      expect(r.status).toBe(202);
      ids.add(((await r.json()) as { task_id: string }).task_id);
    }
    expect(ids.size).toBe(1);
    expect(await countTasks()).toBe(before + 1);
    const [taskId] = [...ids];
    const { data: rows } = await sb.admin.from("outbox").select("event_id").eq("event_id", `task-run-${taskId}`);
    expect(rows).toHaveLength(1);
    await until(() => events.events.length > eventsBefore, { message: "the start event was never relayed" });
    expect(events.events.filter((e) => e.id === `task-run-${taskId}`)).toHaveLength(1);
  });

  test("the same Idempotency-Key with a different body is a 409 and creates nothing", async () => {
    const first = await post({ agent: "outreach", prompt: "Email the beta list" }, { "idempotency-key": "k-409" });
    expect(first.status).toBe(202);
    const before = await countTasks();
    const res = await post({ agent: "outreach", prompt: "Email everyone" }, { "idempotency-key": "k-409" });
    expect(res.status).toBe(409);
    const json = (await res.json()) as { error: { code: string; details: { task_id: string } } };
    expect(json.error.code).toBe("idempotency_conflict");
    expect(json.error.details.task_id).toBe(((await first.json()) as { task_id: string }).task_id);
    expect(await countTasks()).toBe(before);
  });

  test("when the event API is down the task is still accepted, kept, and started once it is back", async () => {
    const { relayOutbox } = await import("@/inngest/outbox-relay");
    const before = await countTasks();
    events.failing = true;
    let taskId: string;
    try {
      const res = await post({ agent: "research", prompt: "x" }, { "idempotency-key": "while-down" });
      expect(res.status).toBe(202);
      taskId = ((await res.json()) as { task_id: string }).task_id;
      expect(await countTasks()).toBe(before + 1);
      // The relay after the response failed: the event stays recorded, with the error, for a later pass.
      await until(
        async () => (await sb.admin.from("outbox").select("last_error,sent_at").eq("event_id", `task-run-${taskId}`).single()).data?.last_error,
        { message: "the relay never tried" },
      );
      // A replay meanwhile answers for the same task, which still exists.
      const replay = await post({ agent: "research", prompt: "x" }, { "idempotency-key": "while-down" });
      expect(replay.status).toBe(202);
      expect(((await replay.json()) as { task_id: string }).task_id).toBe(taskId);
    } finally {
      events.failing = false;
    }
    // The event API is back: a relay pass (the sweeper's, here called directly, past the backoff) sends it.
    await sb.admin.from("outbox").update({ available_at: new Date(0).toISOString() }).eq("event_id", `task-run-${taskId}`);
    await relayOutbox({ db: sb.admin });
    expect(events.events.filter((e) => e.id === `task-run-${taskId}`)).toHaveLength(1);
    const { data: task } = await sb.admin.from("tasks").select("status").eq("id", taskId).single();
    expect(task?.status).toBe("queued");
  });

  test("503 only when the database is unreachable", async () => {
    const { submitTask } = await import("@/lib/tasks/submit");
    const { createAdminClient } = await import("@/lib/db/admin");
    const { errorJson } = await import("@/lib/http/errors");
    const unreachable = createAdminClient({ url: "http://127.0.0.1:9", secretKey: sb.secretKey });
    const err = await submitTask(unreachable, { agent: "research", prompt: "x" }, null, "db-down").catch((e: unknown) => e);
    const res = errorJson(err as never);
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBe("5");
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("database_unavailable");
  });

  test("submitTask's direct call (lib/db/direct-rpc.ts) answers exactly as the call through supabase-js", async () => {
    const { submitTask } = await import("@/lib/tasks/submit");
    const { createAdminClient } = await import("@/lib/db/admin");
    const { parseApiKey, createApiKey } = await import("@/lib/api-keys");
    const { errorJson } = await import("@/lib/http/errors");
    const key = parseApiKey((await createApiKey(sb.admin, "direct vs supabase-js")).key)!;
    const wrongSecret = { id: key.id, hash: "0".repeat(64) };
    const outcome = async (p: Promise<unknown>) => {
      try {
        const t = (await p) as { taskId: string; outcome: string; status: string };
        return { ok: true, outcome: t.outcome, status: t.status, hasId: /^[0-9a-f-]{36}$/.test(t.taskId) };
      } catch (e) {
        const res = errorJson(e as never);
        // The conflict names its task: the same shape, another id per client.
        const text = (await res.text()).replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, "<id>");
        return { ok: false, status: res.status, body: JSON.parse(text) as unknown, retryAfter: res.headers.get("retry-after") };
      }
    };
    const results: Record<string, unknown[]> = {};
    for (const directRpc of [true, false]) {
      const db = createAdminClient({ url: sb.supabaseUrl, secretKey: sb.secretKey, directRpc });
      const down = createAdminClient({ url: "http://127.0.0.1:9", secretKey: sb.secretKey, directRpc });
      const idem = `direct-${directRpc}`;
      const body = { agent: "research", prompt: "same either way", input: { n: 1 }, priority: 3 };
      results[String(directRpc)] = [
        await outcome(submitTask(db, body, key, idem, { relay: "none" })),
        await outcome(submitTask(db, body, key, idem, { relay: "none" })), // replayed
        await outcome(submitTask(db, { ...body, prompt: "another" }, key, idem, { relay: "none" })), // conflict
        await outcome(submitTask(db, body, wrongSecret, null, { relay: "none" })), // unauthorized
        await outcome(submitTask(db, { agent: "nobody", prompt: "x" }, key, null, { relay: "none" })), // unknown agent
        await outcome(submitTask(db, { ...body, next_hop: "no-such-peer" }, key, null, { relay: "none" })), // unknown peer
        await outcome(submitTask(down, body, key, null, { relay: "none" })), // unreachable
      ];
    }
    expect(results["true"]).toEqual(results["false"]);
    expect((results["true"] as { status: number }[]).map((r) => r.status)).toEqual(["queued", "queued", 409, 401, 400, 400, 503]);
  });

  test("a deleted key is refused at once (401, not 500), as is a key revoked after it was used", async () => {
    const { createApiKey } = await import("@/lib/api-keys");
    const k = await createApiKey(sb.admin, "short-lived");
    expect((await post({ agent: "research", prompt: "x" }, { authorization: `Bearer ${k.key}` })).status).toBe(202);
    await sb.admin.from("api_keys").update({ revoked_at: new Date().toISOString() }).eq("id", k.id);
    expect((await post({ agent: "research", prompt: "x" }, { authorization: `Bearer ${k.key}` })).status).toBe(401);
    expect((await getTask("00000000-0000-4000-8000-000000000000", k.key)).status).toBe(401);
    const gone = await createApiKey(sb.admin, "deleted");
    expect((await getTask("00000000-0000-4000-8000-000000000000", gone.key)).status).toBe(404);
    expect((await sb.admin.from("api_keys").delete().eq("id", gone.id)).error).toBeNull();
    const res = await post({ agent: "research", prompt: "x" }, { authorization: `Bearer ${gone.key}` });
    expect(res.status).toBe(401);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("unauthorized");
    expect((await getTask("00000000-0000-4000-8000-000000000000", gone.key)).status).toBe(401);
  });
});

describe("GET /api/tasks/:id and GET /api/tasks", () => {
  test("a task's status, progress, cost and timestamps", async () => {
    const created = (await (await post({ agent: "research", prompt: "status please" })).json()) as { task_id: string };
    const res = await getTask(created.task_id);
    expect(res.status).toBe(200);
    const t = (await res.json()) as Record<string, unknown>;
    expect(t).toMatchObject({
      task_id: created.task_id,
      status: "queued",
      agent: "research",
      progress: { done: 0, total: 10 },
      result: null,
      error: null,
      cost_usd: 0,
      mode: "now", // research's default mode
      deadline: null,
      batch_saving_micros: 0,
    });
    expect(Date.parse(t.created_at as string)).not.toBeNaN();
    // mode auto with a deadline: both kept.
    const auto = (await (await post({ agent: "research", prompt: "by morning", mode: "auto", deadline: "2026-11-30T07:00:00+01:00" })).json()) as { task_id: string };
    expect(await (await getTask(auto.task_id)).json()).toMatchObject({ mode: "auto", deadline: "2026-11-30T06:00:00+00:00" });
    expect(Date.parse(t.updated_at as string)).not.toBeNaN();
  });

  test("404 JSON for an unknown id and for a malformed id; 401 without a key", async () => {
    for (const id of ["00000000-0000-4000-8000-000000000000", "not-a-uuid", "'; drop table tasks; --"]) {
      const res = await getTask(id);
      expect(res.status).toBe(404);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe("not_found");
    }
    expect((await getTask("00000000-0000-4000-8000-000000000000", "wrong")).status).toBe(401);
  });

  test("the list filters by status and pages with a cursor without gaps or repeats", async () => {
    for (let i = 0; i < 5; i++) expect((await post({ agent: "outreach", prompt: `page ${i}` })).status).toBe(202);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const url = new URL("http://x/api/tasks");
      url.searchParams.set("limit", "2");
      url.searchParams.set("agent", "outreach");
      if (cursor) url.searchParams.set("cursor", cursor);
      const res = await tasksRoute.GET(new Request(url, { headers: { authorization: `Bearer ${apiKey}` } }));
      expect(res.status).toBe(200);
      const page = (await res.json()) as { tasks: { task_id: string; agent: string }[]; next_cursor: string | null };
      expect(page.tasks.length).toBeLessThanOrEqual(2);
      for (const t of page.tasks) expect(t.agent).toBe("outreach");
      seen.push(...page.tasks.map((t) => t.task_id));
      cursor = page.next_cursor;
    } while (cursor);
    const { count } = await sb.admin.from("tasks").select("id", { count: "exact", head: true }).eq("agent_id", "outreach");
    expect(seen.length).toBe(count);
    expect(new Set(seen).size).toBe(seen.length);

    const filtered = await tasksRoute.GET(
      new Request("http://x/api/tasks?status=completed", { headers: { authorization: `Bearer ${apiKey}` } }),
    );
    expect(((await filtered.json()) as { tasks: unknown[] }).tasks).toEqual([]);
    const bad = await tasksRoute.GET(new Request("http://x/api/tasks?status=done", { headers: { authorization: `Bearer ${apiKey}` } }));
    expect(bad.status).toBe(400);
    const badCursor = await tasksRoute.GET(
      new Request("http://x/api/tasks?cursor=abc", { headers: { authorization: `Bearer ${apiKey}` } }),
    );
    expect(badCursor.status).toBe(400);
  });

  test("a task whose status changes between the list's two reads is not listed under its old status", async () => {
    // The list reads the page's keys first, then the chosen tasks whole; before, the second read dropped the filter.
    const { listTasks } = await import("@/lib/tasks/service");
    const { createClient } = await import("@supabase/supabase-js");
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await post({ agent: "research", prompt: `between reads ${i}` });
      ids.push(((await res.json()) as { task_id: string }).task_id);
    }
    const moved = ids[1]!;
    let wholeReads = 0;
    // A real client on the real PostgREST whose second read (the one with the embedded approvals) first sees the
    // task started, as a run would between the two reads.
    const racing = createClient(sb.supabaseUrl, sb.secretKey, {
      auth: { persistSession: false, autoRefreshToken: false },
      global: {
        fetch: async (input: RequestInfo | URL, init?: RequestInit) => {
          if (decodeURIComponent(String(input)).includes("approvals(") && wholeReads++ === 0) {
            const { error } = await sb.admin.from("tasks").update({ status: "running" }).eq("id", moved);
            if (error) throw new Error(error.message);
          }
          return fetch(input, init);
        },
      },
    }) as unknown as Parameters<typeof listTasks>[0];
    const page = await listTasks(racing, { status: "queued", agent: "research", limit: 100 });
    expect(wholeReads).toBe(1);
    const listed = page.tasks.map((t) => t.task_id);
    expect(listed).toContain(ids[0]);
    expect(listed).toContain(ids[2]);
    expect(listed).not.toContain(moved);
    for (const t of page.tasks) expect(t.status).toBe("queued");
  });

  test("a page stops at its byte budget (big inputs), and the cursor goes on from there without gaps or repeats", async () => {
    // Before, a page of `limit` tasks carried every one whole: 100 tasks with ~200 KB inputs were a 20 MB answer.
    const { MAX_PAGE_BYTES } = await import("@/lib/tasks/service");
    const blob = "x".repeat(200_000);
    for (let i = 0; i < 12; i++) expect((await post({ agent: "content", prompt: `big ${i}`, input: { blob } })).status).toBe(202);
    const seen: string[] = [];
    const sizes: number[] = [];
    let cursor: string | null = null;
    do {
      const url = new URL("http://x/api/tasks?limit=100&agent=content");
      if (cursor) url.searchParams.set("cursor", cursor);
      const res = await tasksRoute.GET(new Request(url, { headers: { authorization: `Bearer ${apiKey}` } }));
      const text = await res.text();
      expect(res.status).toBe(200);
      const page = JSON.parse(text) as { tasks: { task_id: string; input: { blob?: string } | null }[]; next_cursor: string | null };
      expect(page.tasks.length).toBeGreaterThan(0);
      for (const t of page.tasks) if (t.input?.blob) expect(t.input.blob.length).toBe(200_000); // tasks stay whole
      sizes.push(Buffer.byteLength(text));
      seen.push(...page.tasks.map((t) => t.task_id));
      cursor = page.next_cursor;
    } while (cursor);
    expect(sizes.length).toBeGreaterThan(1);
    for (const size of sizes) expect(size).toBeLessThan(MAX_PAGE_BYTES + 64 * 1024);
    const { count } = await sb.admin.from("tasks").select("id", { count: "exact", head: true }).eq("agent_id", "content");
    expect(seen.length).toBe(count);
    expect(new Set(seen).size).toBe(seen.length);
  });
});
