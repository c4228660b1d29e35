// Inbound webhooks through the real route handler, the real database (embedded Postgres + PostgREST) and the local
// engine as the event API. Every signature here is made by the `standardwebhooks` library itself, as a sender
// using it would make it. Asserts on outcomes: the tasks table, the answers, the refusal counters.
import { randomBytes } from "node:crypto";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startAppFixture, type AppFixture } from "../../support/app-fixture";
import type { TestSupabase } from "../../support/supabase";

const secret = () => `whsec_${randomBytes(32).toString("base64")}`;
const OLD = secret();
const NEW = secret();
const OTHER = secret();

let fx: AppFixture;
let sb: TestSupabase;
let POST: typeof import("@/app/api/webhooks/[source]/route").POST;

beforeAll(async () => {
  // No function is served: the engine is only the event API here, and the tasks the route records stay queued.
  fx = await startAppFixture({
    serve: () => ({ functions: [] }),
    env: { TEST_HOOK_SECRET_OLD: OLD, TEST_HOOK_SECRET_NEW: NEW },
  });
  ({ sb } = fx);
  ({ POST } = await import("@/app/api/webhooks/[source]/route"));
  const { error } = await sb.admin.from("webhook_sources").insert(
    {
      name: "github",
      agent_id: "research",
      prompt_template: "Summarise the issue '{{payload.issue.title}}' opened by {{payload.sender.login}}.",
      input_mapping: { issue_number: "payload.issue.number", repo: "payload.repository.full_name" },
      // Rotation in progress: both secrets verify.
      secret_env_names: ["TEST_HOOK_SECRET_OLD", "TEST_HOOK_SECRET_NEW"],
    },
  );
  expect(error).toBeNull();
  const paused = { name: "paused", agent_id: "research", prompt_template: "x", secret_env_names: ["TEST_HOOK_SECRET_OLD"], enabled: false };
  expect((await sb.admin.from("webhook_sources").insert(paused)).error).toBeNull();
});

afterAll(() => fx?.stop());

const payload = (n: number) => ({
  action: "opened",
  issue: { number: n, title: `Crash on start #${n}` },
  sender: { login: "octocat" },
  repository: { full_name: "acme/app" },
});

function signed(body: string, o: { id?: string; secret?: string; at?: Date } = {}): Record<string, string> {
  const id = o.id ?? `msg_${randomBytes(8).toString("hex")}`;
  const at = o.at ?? new Date();
  return {
    "content-type": "application/json",
    "webhook-id": id,
    "webhook-timestamp": String(Math.floor(at.getTime() / 1000)),
    "webhook-signature": new Webhook(o.secret ?? OLD).sign(id, at, body),
  };
}

async function deliver(source: string, body: string, headers: Record<string, string>) {
  const res = await POST(new Request(`http://app.test/api/webhooks/${source}`, { method: "POST", headers, body }), {
    params: Promise.resolve({ source }),
  });
  return { status: res.status, json: (await res.json()) as { task_id?: string; duplicate?: boolean; error?: { code: string; message: string; details?: unknown } } };
}

async function tasksWithKeyPrefix(prefix: string) {
  const { data } = await sb.admin.from("tasks").select("id,prompt,input,idempotency_key").like("idempotency_key", `${prefix}%`);
  return data ?? [];
}

async function refusals(source: string, reason: string): Promise<number> {
  const { data } = await sb.admin.from("webhook_refusals").select("count").eq("source", source).eq("reason", reason).maybeSingle();
  return Number(data?.count ?? 0);
}

describe("POST /api/webhooks/:source", () => {
  test("a valid delivery makes a task from the template and mapping", async () => {
    const body = JSON.stringify(payload(1));
    const h = signed(body, { id: "msg_valid_1" });
    const r = await deliver("github", body, h);
    expect(r.status).toBe(202);
    expect(r.json.duplicate).toBe(false);
    const { data: task } = await sb.admin.from("tasks").select("prompt,input,agent_id,idempotency_key").eq("id", r.json.task_id!).single();
    expect(task).toEqual({
      prompt: "Summarise the issue 'Crash on start #1' opened by octocat.",
      input: { issue_number: 1, repo: "acme/app" },
      agent_id: "research",
      idempotency_key: "webhook:github:msg_valid_1",
    });
  });

  test("the rotated-in secret verifies too; a wrong secret, a tampered body, old and future timestamps are refused with 401", async () => {
    const body = JSON.stringify(payload(2));
    expect((await deliver("github", body, signed(body, { secret: NEW }))).status).toBe(202);

    const before = await tasksWithKeyPrefix("webhook:github:msg_refused");
    const wrong = await deliver("github", body, signed(body, { secret: OTHER, id: "msg_refused_1" }));
    expect(wrong).toMatchObject({ status: 401, json: { error: { code: "invalid_signature" } } });

    const h = signed(body, { id: "msg_refused_2" });
    const tampered = await deliver("github", body.replace("octocat", "mallory"), h);
    expect(tampered).toMatchObject({ status: 401, json: { error: { code: "invalid_signature" } } });

    const old = await deliver("github", body, signed(body, { id: "msg_refused_3", at: new Date(Date.now() - 6 * 60_000) }));
    expect(old).toMatchObject({ status: 401, json: { error: { code: "timestamp_out_of_tolerance" } } });
    const future = await deliver("github", body, signed(body, { id: "msg_refused_4", at: new Date(Date.now() + 6 * 60_000) }));
    expect(future).toMatchObject({ status: 401, json: { error: { code: "timestamp_out_of_tolerance" } } });

    const { "webhook-signature": _dropped, ...unsigned } = signed(body, { id: "msg_refused_5" });
    expect((await deliver("github", body, unsigned)).json.error?.code).toBe("missing_signature");

    // Nothing recorded but the counters.
    expect(await tasksWithKeyPrefix("webhook:github:msg_refused")).toEqual(before);
    expect(await refusals("github", "bad_signature")).toBe(2);
    expect(await refusals("github", "stale_timestamp")).toBe(2);
    expect(await refusals("github", "missing_headers")).toBe(1);
  });

  test("the same delivery 100 times concurrently makes one task; every repeat answers its id", async () => {
    const body = JSON.stringify(payload(3));
    const h = signed(body, { id: "msg_dup_100" });
    const answers = await Promise.all(Array.from({ length: 100 }, () => deliver("github", body, h)));
    expect(answers.every((a) => a.status === 202)).toBe(true);
    const ids = new Set(answers.map((a) => a.json.task_id));
    expect(ids.size).toBe(1);
    expect(answers.filter((a) => a.json.duplicate === false)).toHaveLength(1);
    expect(await tasksWithKeyPrefix("webhook:github:msg_dup_100")).toHaveLength(1);
    // And sequentially, later.
    const again = await deliver("github", body, signed(body, { id: "msg_dup_100" }));
    expect(again).toMatchObject({ status: 202, json: { task_id: [...ids][0], duplicate: true } });
  });

  test("unknown or disabled source 404, too large 413, unusable payload 422 naming the field, bad JSON 400", async () => {
    const body = JSON.stringify(payload(4));
    expect((await deliver("nope", body, signed(body))).status).toBe(404);
    expect((await deliver("paused", body, signed(body))).status).toBe(404);
    expect(await refusals("*", "unknown_source")).toBeGreaterThanOrEqual(1);
    expect(await refusals("paused", "disabled")).toBe(1);

    const big = JSON.stringify({ ...payload(5), pad: "x".repeat(257 * 1024) });
    expect((await deliver("github", big, signed(big))).status).toBe(413);

    const noTitle = JSON.stringify({ ...payload(6), issue: { number: 6 } });
    const r = await deliver("github", noTitle, signed(noTitle, { id: "msg_422" }));
    expect(r.status).toBe(422);
    expect(r.json.error?.code).toBe("unprocessable_payload");
    expect(r.json.error?.message).toContain("payload.issue.title");
    expect(await tasksWithKeyPrefix("webhook:github:msg_422")).toHaveLength(0);

    const notJson = "{not json";
    expect((await deliver("github", notJson, signed(notJson))).status).toBe(400);
  });
});
