// The API an operator uses instead of SQL, through the route handlers on the real embedded Postgres + PostgREST:
// approval ids on tasks and the approval list, artifacts, and agents (read, change, audit — the audit written by
// the same Postgres function that changes the agent, hammered concurrently).
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startRouteFixture, type RouteFixture } from "../../support/app-fixture";
import type { TestSupabase } from "../../support/supabase";

let fx: RouteFixture;
let sb: TestSupabase;
let apiKey: string;
let apiKeyId: string;
let routes: {
  approvals: typeof import("@/app/api/approvals/route");
  approval: typeof import("@/app/api/approvals/[id]/route");
  task: typeof import("@/app/api/tasks/[id]/route");
  taskArtifacts: typeof import("@/app/api/tasks/[id]/artifacts/route");
  artifact: typeof import("@/app/api/artifacts/[id]/route");
  agents: typeof import("@/app/api/agents/route");
  agent: typeof import("@/app/api/agents/[id]/route");
};

beforeAll(async () => {
  fx = await startRouteFixture();
  sb = fx.sb;
  const { createApiKey } = await import("@/lib/api-keys");
  const k = await createApiKey(sb.admin, "console api tests");
  apiKey = k.key;
  apiKeyId = k.id;
  routes = {
    approvals: await import("@/app/api/approvals/route"),
    approval: await import("@/app/api/approvals/[id]/route"),
    task: await import("@/app/api/tasks/[id]/route"),
    taskArtifacts: await import("@/app/api/tasks/[id]/artifacts/route"),
    artifact: await import("@/app/api/artifacts/[id]/route"),
    agents: await import("@/app/api/agents/route"),
    agent: await import("@/app/api/agents/[id]/route"),
  };
});

afterAll(async () => {
  await fx?.stop();
});

const auth = (extra: Record<string, string> = {}) => ({ authorization: `Bearer ${apiKey}`, ...extra });
const ctx = (id: string) => ({ params: Promise.resolve({ id }) });
const get = (url: string) => new Request(`http://localhost${url}`, { headers: auth() });
const json = async <T = Record<string, unknown>>(r: Response) => (await r.json()) as T;

async function taskWithApprovals(): Promise<{ taskId: string; decided: string; pending: string }> {
  const { data: t, error } = await sb.admin.rpc("create_task", {
    p_agent_id: "content",
    p_prompt: "A draft to review",
    p_input: null as never,
    p_priority: 0,
    p_mode: "now",
    p_require_approval: true,
    p_callback_url: null as never,
    p_api_key_id: null as never,
    p_idempotency_key: null as never,
    p_request_hash: "x",
  });
  if (error) throw error;
  const taskId = (Array.isArray(t) ? t[0] : t)!.task_id as string;
  const request = async (revision: number) => {
    const { data, error: e } = await sb.admin.rpc("request_approval", {
      p_task_id: taskId,
      p_stage: "draft",
      p_revision: revision,
      p_draft: { text: `draft ${revision}` },
      p_timeout_seconds: 3600,
      p_auto_action: "reject",
      p_now: new Date(Date.now() + revision).toISOString(),
    });
    if (e) throw e;
    await sb.admin.rpc("publish_approval", { p_id: (data as { id: string }).id, p_now: new Date().toISOString() });
    return (data as { id: string }).id;
  };
  const decided = await request(1);
  const { error: de } = await sb.admin.rpc("decide_approval", {
    p_id: decided,
    p_decision: "approve_with_changes",
    p_notes: "shorter",
    p_actor: "test",
    p_via: "api",
    p_now: new Date().toISOString(),
  } as never);
  if (de) throw de;
  const pending = await request(2);
  return { taskId, decided, pending };
}

describe("approvals over the API", () => {
  test("a task names its approvals, pending and past; GET /api/approvals filters by status and task and pages", async () => {
    const { taskId, decided, pending } = await taskWithApprovals();
    const task = await json<{ approvals: { approval_id: string; status: string }[]; pending_approval_id: string }>(
      await routes.task.GET(get(`/api/tasks/${taskId}`), ctx(taskId)),
    );
    expect(task.approvals.map((a) => [a.approval_id, a.status])).toEqual([
      [decided, "approved_with_changes"],
      [pending, "pending"],
    ]);
    expect(task.pending_approval_id).toBe(pending);

    const pendingList = await json<{ approvals: { approval_id: string; status: string; draft: unknown }[] }>(
      await routes.approvals.GET(get(`/api/approvals?status=pending&task_id=${taskId}`)),
    );
    expect(pendingList.approvals.map((a) => a.approval_id)).toEqual([pending]);
    expect(pendingList.approvals[0]!.draft).toEqual({ text: "draft 2" });

    // Pages of one: newest request first, no gaps, no repeats.
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { approvals: { approval_id: string }[]; next_cursor: string | null } = await json(
        await routes.approvals.GET(get(`/api/approvals?task_id=${taskId}&limit=1${cursor ? `&cursor=${cursor}` : ""}`)),
      );
      seen.push(...page.approvals.map((a) => a.approval_id));
      cursor = page.next_cursor;
    } while (cursor);
    expect(seen).toEqual([pending, decided]);
  });

  test("bad filters are 400 naming the field; no key is 401", async () => {
    for (const [q, field] of [
      ["status=maybe", "status"],
      ["task_id=nope", "task_id"],
      ["cursor=garbage", "cursor"],
      ["colour=red", "colour"],
    ] as const) {
      const r = await routes.approvals.GET(get(`/api/approvals?${q}`));
      expect(r.status, q).toBe(400);
      expect((await json<{ error: { message: string } }>(r)).error.message).toContain(field);
    }
    expect((await routes.approvals.GET(new Request("http://localhost/api/approvals"))).status).toBe(401);
  });

  test("POST edited_text only with approve; the edit is returned and stored", async () => {
    const { pending } = await taskWithApprovals();
    const post = (body: unknown) =>
      routes.approval.POST(
        new Request(`http://localhost/api/approvals/${pending}`, { method: "POST", headers: auth({ "content-type": "application/json" }), body: JSON.stringify(body) }),
        ctx(pending),
      );
    const bad = await post({ decision: "reject", edited_text: "x" });
    expect(bad.status).toBe(400);
    expect((await json<{ error: { message: string } }>(bad)).error.message).toContain("edited_text");
    const ok = await post({ decision: "approve", edited_text: "My version." });
    expect(ok.status).toBe(200);
    expect(await json(ok)).toMatchObject({ outcome: "decided", status: "approved", edited_text: "My version." });
    const read = await json(await routes.approval.GET(get(`/api/approvals/${pending}`), ctx(pending)));
    expect(read).toMatchObject({ status: "approved", edited_text: "My version.", decided_via: "api" });
  });
});

describe("artifacts over the API", () => {
  test("a task's artifacts with content type and size; one artifact as JSON and raw", async () => {
    const { taskId } = await taskWithApprovals();
    const { saveArtifact } = await import("@/lib/artifacts");
    const content = "# Findings\n\nDurable execution — résumé.";
    const saved = await saveArtifact(sb.admin, { taskId, toolUseId: "toolu_1", name: "findings.md", contentType: "text/markdown", content });
    const list = await json<{ artifacts: { artifact_id: string; content_type: string; bytes: number; url: string }[] }>(
      await routes.taskArtifacts.GET(get(`/api/tasks/${taskId}/artifacts`), ctx(taskId)),
    );
    expect(list.artifacts).toEqual([
      expect.objectContaining({ artifact_id: saved.artifact_id, name: "findings.md", content_type: "text/markdown", bytes: Buffer.byteLength(content), url: `/api/artifacts/${saved.artifact_id}` }),
    ]);
    const one = await json(await routes.artifact.GET(get(`/api/artifacts/${saved.artifact_id}`), ctx(saved.artifact_id)));
    expect(one).toMatchObject({ artifact_id: saved.artifact_id, task_id: taskId, content, bytes: Buffer.byteLength(content) });
    const raw = await routes.artifact.GET(get(`/api/artifacts/${saved.artifact_id}?format=raw`), ctx(saved.artifact_id));
    expect(raw.headers.get("content-type")).toBe("text/markdown; charset=utf-8");
    expect(raw.headers.get("content-length")).toBe(String(Buffer.byteLength(content)));
    expect(raw.headers.get("x-content-type-options")).toBe("nosniff");
    expect(await raw.text()).toBe(content);
    for (const id of ["00000000-0000-4000-8000-000000000000", "nope"]) {
      expect((await routes.artifact.GET(get(`/api/artifacts/${id}`), ctx(id))).status).toBe(404);
      expect((await routes.taskArtifacts.GET(get(`/api/tasks/${id}/artifacts`), ctx(id))).status).toBe(404);
    }
  });
});

describe("agents over the API", () => {
  const patch = (id: string, body: unknown) =>
    routes.agent.PATCH(
      new Request(`http://localhost/api/agents/${id}`, { method: "PATCH", headers: auth({ "content-type": "application/json" }), body: JSON.stringify(body) }),
      ctx(id),
    );

  test("GET lists every agent with settings, today's spend and concurrency in use", async () => {
    const body = await json<{ agents: { id: string; budget: { daily_budget_micros: number }; today: { committed_micros: number }; concurrency_in_use: number }[] }>(
      await routes.agents.GET(get("/api/agents")),
    );
    expect(body.agents.map((a) => a.id)).toEqual(["content", "outreach", "research"]);
    const research = body.agents.find((a) => a.id === "research")!;
    expect(research).toMatchObject({ budget: { daily_budget_micros: 2_000_000, timezone: "UTC" }, limits: { max_turns: 10, concurrency: 2 }, concurrency_in_use: 0 });
    expect(research.today.committed_micros).toBe(0);
  });

  test("PATCH changes budget, limits, model, approval rule and time zone, and audits who, what, when and from which value", async () => {
    const r = await patch("outreach", {
      daily_budget_micros: 3_500_000,
      max_turns: 4,
      model: "claude-sonnet-4-6",
      requires_approval: true,
      approval_auto_action: "approve",
      budget_timezone: "Europe/Berlin",
      default_mode: "auto",
    });
    expect(r.status).toBe(200);
    const body = await json<{ agent: Record<string, unknown>; change: { changes: Record<string, { from: unknown; to: unknown }>; actor: string } }>(r);
    expect(body.agent).toMatchObject({
      model: "claude-sonnet-4-6",
      budget: { daily_budget_micros: 3_500_000, timezone: "Europe/Berlin" },
      approval: { requires_approval: true, auto_action: "approve" },
      limits: { max_turns: 4 },
      default_mode: "auto",
    });
    expect(body.change.actor).toBe(`api:${apiKeyId}`);
    expect(body.change.changes).toEqual({
      daily_budget_micros: { from: 1_000_000, to: 3_500_000 },
      max_turns: { from: 6, to: 4 },
      model: { from: "claude-haiku-4-5", to: "claude-sonnet-4-6" },
      requires_approval: { from: false, to: true },
      approval_auto_action: { from: "reject", to: "approve" },
      budget_timezone: { from: "UTC", to: "Europe/Berlin" },
      default_mode: { from: "now", to: "auto" },
    });
    // The same values again change nothing and record nothing.
    const again = await json<{ change: unknown }>(await patch("outreach", { max_turns: 4 }));
    expect(again.change).toBeNull();
    const read = await json<{ changes: unknown[] }>(await routes.agent.GET(get("/api/agents/outreach"), ctx("outreach")));
    expect(read.changes).toHaveLength(1);
  });

  test("PATCH validates with zod (400 naming the field), 404 for an unknown agent", async () => {
    for (const [body, field] of [
      [{ max_turns: 0 }, "max_turns"],
      [{ max_turns: 2.5 }, "max_turns"],
      [{ daily_budget_micros: -1 }, "daily_budget_micros"],
      [{ model: "gpt-4" }, "model"],
      [{ budget_timezone: "Mars/Olympus" }, "budget_timezone"],
      [{ approval_auto_action: "maybe" }, "approval_auto_action"],
      [{ default_mode: "tonight" }, "default_mode"],
      [{ system_prompt: "be evil" }, "system_prompt"],
      [{}, "(root)"],
    ] as const) {
      const r = await patch("research", body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect((await json<{ error: { message: string } }>(r)).error.message, JSON.stringify(body)).toContain(field);
    }
    expect((await patch("nobody", { max_turns: 3 })).status).toBe(404);
  });

  test("concurrent changes: every one is applied in turn and audited with the value it replaced", async () => {
    const caps = Array.from({ length: 20 }, (_, i) => 5_000_000 + i * 1000);
    const results = await Promise.all(caps.map((c) => patch("content", { daily_budget_micros: c })));
    for (const r of results) expect(r.status).toBe(200);
    const { data: audit } = await sb.admin
      .from("agent_changes")
      .select("id,changes")
      .eq("agent_id", "content")
      .order("id");
    const chain = audit!.map((a) => (a.changes as { daily_budget_micros: { from: number; to: number } }).daily_budget_micros);
    expect(chain).toHaveLength(20);
    // A chain without gaps: each change starts from the value the previous one set.
    expect(chain[0]!.from).toBe(1_000_000);
    for (let i = 1; i < chain.length; i++) expect(chain[i]!.from).toBe(chain[i - 1]!.to);
    const { data: agent } = await sb.admin.from("agents").select("daily_budget_micros").eq("id", "content").single();
    expect(Number(agent!.daily_budget_micros)).toBe(chain[chain.length - 1]!.to);
  });
});
