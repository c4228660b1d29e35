// The webhook sources API on the real database: list / get / create / update / enable-disable through the route
// handlers, validated (400 naming the field), audited (who, when, each field from → to, written by
// save_webhook_source in the statement that makes the change), never returning a secret, with the refusal counters
// the inbound route keeps; and save_webhook_source hammered concurrently.
import { randomBytes } from "node:crypto";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, expect, test } from "vitest";
import { startRouteFixture, type RouteFixture } from "../../support/app-fixture";
import type { TestSupabase } from "../../support/supabase";

const SECRET = `whsec_${randomBytes(32).toString("base64")}`;
let fx: RouteFixture;
let sb: TestSupabase;
let apiKey: string;
let apiKeyId: string;
let routes: {
  list: typeof import("@/app/api/webhook-sources/route");
  one: typeof import("@/app/api/webhook-sources/[name]/route");
  inbound: typeof import("@/app/api/webhooks/[source]/route");
  peers: typeof import("@/app/api/peers/route");
};

beforeAll(async () => {
  // Nothing here starts a run: the fixture's event API only records.
  fx = await startRouteFixture({ env: { SOURCES_API_SECRET: SECRET } });
  sb = fx.sb;
  routes = {
    list: await import("@/app/api/webhook-sources/route"),
    one: await import("@/app/api/webhook-sources/[name]/route"),
    inbound: await import("@/app/api/webhooks/[source]/route"),
    peers: await import("@/app/api/peers/route"),
  };
  const k = await (await import("@/lib/api-keys")).createApiKey(sb.admin, "sources api tests");
  apiKey = k.key;
  apiKeyId = k.id;
});

afterAll(async () => {
  await fx?.stop();
});

const call = (method: string, path: string, body?: unknown, key = apiKey) =>
  new Request(`http://app.test${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body !== undefined ? { "content-type": "application/json" } : {}) },
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
const params = (name: string) => ({ params: Promise.resolve({ name }) });
const errorOf = async (r: Response) => ((await r.json()) as { error: { code: string; message: string; details?: { field: string }[] } }).error;

const github = {
  name: "github",
  agent: "research",
  prompt_template: 'Summarise issue "{{payload.issue.title}}"',
  input_mapping: { issue: "payload.issue.number" },
  secret_env_names: ["SOURCES_API_SECRET", "SOURCES_API_SECRET_NEXT"],
};

test("create, list, get, disable and enable a source; every change audited; no secret ever returned", async () => {
  expect((await routes.list.GET(call("GET", "/api/webhook-sources", undefined, "ns_wrong"))).status).toBe(401);

  const created = await routes.list.POST(call("POST", "/api/webhook-sources", github));
  expect(created.status).toBe(201);
  expect(created.headers.get("location")).toBe("/api/webhook-sources/github");
  const text = await created.text();
  expect(text).not.toContain(SECRET);
  expect(JSON.parse(text)).toMatchObject({ name: "github", agent: "research", enabled: true, secrets_set: 1, refused_total: 0, url: "/api/webhooks/github" });

  // A refused delivery (a bad signature) shows up as a counter, and only as that.
  const body = JSON.stringify({ issue: { title: "t", number: 1 } });
  const at = new Date();
  const forged = await routes.inbound.POST(
    new Request("http://app.test/api/webhooks/github", {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "webhook-id": "msg_forged",
        "webhook-timestamp": String(Math.floor(at.getTime() / 1000)),
        "webhook-signature": new Webhook(`whsec_${randomBytes(32).toString("base64")}`).sign("msg_forged", at, body),
      },
      body,
    }),
    { params: Promise.resolve({ source: "github" }) },
  );
  expect(forged.status).toBe(401);
  const listed = await routes.list.GET(call("GET", "/api/webhook-sources"));
  const list = (await listed.json()) as { sources: { name: string; refusals: Record<string, number>; refused_total: number }[] };
  expect(list.sources.find((s) => s.name === "github")).toMatchObject({ refusals: { bad_signature: 1 }, refused_total: 1 });

  const off = await routes.one.PATCH(call("PATCH", "/api/webhook-sources/github", { enabled: false }), params("github"));
  expect(off.status).toBe(200);
  const offBody = (await off.json()) as { source: { enabled: boolean }; change_id: number };
  expect(offBody.source.enabled).toBe(false);
  expect(offBody.change_id).toBeGreaterThan(0);
  // The same change again differs in nothing: no audit row.
  expect(((await (await routes.one.PATCH(call("PATCH", "/api/webhook-sources/github", { enabled: false }), params("github"))).json()) as { change_id: null }).change_id).toBeNull();
  const disabled = await routes.inbound.POST(new Request("http://app.test/api/webhooks/github", { method: "POST", body }), { params: Promise.resolve({ source: "github" }) });
  expect(disabled.status).toBe(404);
  expect((await routes.one.PATCH(call("PATCH", "/api/webhook-sources/github", { enabled: true, description: "GitHub issues" }), params("github"))).status).toBe(200);

  const one = await routes.one.GET(call("GET", "/api/webhook-sources/github"), params("github"));
  const detail = (await one.json()) as { enabled: boolean; refusals: Record<string, number>; changes: { actor: string; action: string; changes: Record<string, { from: unknown; to: unknown }> }[] };
  expect(detail.enabled).toBe(true);
  expect(detail.refusals).toEqual({ bad_signature: 1, disabled: 1 });
  expect(detail.changes.map((c) => [c.action, c.actor, Object.keys(c.changes).sort()])).toEqual([
    ["update", `api:${apiKeyId}`, ["description", "enabled"]],
    ["update", `api:${apiKeyId}`, ["enabled"]],
    ["create", `api:${apiKeyId}`, expect.arrayContaining(["agent_id", "prompt_template", "secret_env_names"])],
  ]);
  expect(detail.changes[1]!.changes["enabled"]).toEqual({ from: true, to: false });
  expect(JSON.stringify(detail)).not.toContain(SECRET);
});

test("bad input is a 400 naming the field; unknown source 404; a taken name 409", async () => {
  const cases: [unknown, string][] = [
    [{ ...github, name: "Bad Name" }, "name"],
    [{ ...github, name: "x1", agent: "nobody" }, "agent"],
    [{ ...github, name: "x2", secret_env_names: ["whsec_abc"] }, "secret_env_names.0"],
    [{ ...github, name: "x3", secret_env_names: [] }, "secret_env_names"],
    [{ ...github, name: "x4", input_mapping: { issue: "payload..x" } }, "input_mapping.issue"],
    [{ ...github, name: "x5", secret: SECRET }, "secret"],
    [{ ...github, name: "x6", callback_url: "ftp://x" }, "callback_url"],
  ];
  for (const [b, field] of cases) {
    const r = await routes.list.POST(call("POST", "/api/webhook-sources", b));
    expect(r.status, JSON.stringify(b)).toBe(400);
    const e = await errorOf(r);
    expect(e.details?.map((d) => d.field) ?? [e.message], JSON.stringify(b)).toContainEqual(expect.stringContaining(field));
  }
  const patchBad = await routes.one.PATCH(call("PATCH", "/api/webhook-sources/github", { enabled: "yes" }), params("github"));
  expect(patchBad.status).toBe(400);
  expect((await errorOf(patchBad)).details![0]!.field).toBe("enabled");
  expect((await routes.one.PATCH(call("PATCH", "/api/webhook-sources/github", {}), params("github"))).status).toBe(400);
  expect((await routes.one.GET(call("GET", "/api/webhook-sources/nope"), params("nope"))).status).toBe(404);
  expect((await routes.one.PATCH(call("PATCH", "/api/webhook-sources/nope", { enabled: true }), params("nope"))).status).toBe(404);
  expect((await routes.one.GET(call("GET", "/api/webhook-sources/%00"), params("\u0000"))).status).toBe(404);
  const taken = await routes.list.POST(call("POST", "/api/webhook-sources", github));
  expect(taken.status).toBe(409);
});

test("save_webhook_source under concurrency: one of 20 creates wins; 20 racing changes leave an unbroken audit chain", async () => {
  const { saveWebhookSource } = await import("@/lib/webhooks/sources");
  const { ApiError } = await import("@/lib/http/errors");
  const { name: _n, ...fields } = { ...github, name: "race" };
  const creates = await Promise.allSettled(Array.from({ length: 20 }, () => saveWebhookSource(sb.admin, "race", fields, "test", true)));
  expect(creates.filter((c) => c.status === "fulfilled")).toHaveLength(1);
  for (const c of creates) if (c.status === "rejected") expect((c.reason as InstanceType<typeof ApiError>).status).toBe(409);

  const changes = await Promise.all(
    Array.from({ length: 20 }, (_, i) => saveWebhookSource(sb.admin, "race", { description: `d${i}` }, `test-${i}`, false)),
  );
  expect(changes.every((c) => c.change_id !== null)).toBe(true);
  const { data: audit } = await sb.admin.from("webhook_source_changes").select("id,action,changes").eq("source", "race").order("id");
  expect(audit).toHaveLength(21);
  // Each change's "from" is the previous change's "to": no change was lost or interleaved.
  let prev: unknown = "";
  for (const a of audit!.slice(1)) {
    const d = (a.changes as Record<string, { from: unknown; to: unknown }>)["description"]!;
    expect(d.from).toBe(prev);
    prev = d.to;
  }
  const { data: final } = await sb.admin.from("webhook_sources").select("description").eq("name", "race").single();
  expect(final!.description).toBe(prev);
});

test("GET /api/peers lists the peers, whether their secret is set here, never the secret", async () => {
  const rows = [
    { name: "b", base_url: "https://b.example.com", source: "from-a", secret_env_name: "SOURCES_API_SECRET", enabled: true },
    { name: "c", base_url: "https://c.example.com/nightshift", source: "from-a", secret_env_name: "PEER_C_SECRET_UNSET", enabled: false },
  ];
  expect((await sb.admin.from("peers").insert(rows)).error).toBeNull();
  // A base URL the hop could not be built on is refused by the table itself.
  expect((await sb.admin.from("peers").insert({ name: "bad", base_url: "https://x.example/", source: "s", secret_env_name: "PEER_X" })).error?.code).toBe("23514");
  // So is one carrying credentials: GET /api/peers and the console show base_url, and the delivery refuses such URLs.
  for (const base_url of ["https://user:pw@x.example", "http://token@x.example/p"]) {
    expect((await sb.admin.from("peers").insert({ name: "creds", base_url, source: "s", secret_env_name: "PEER_X" })).error?.code, base_url).toBe("23514");
  }
  expect((await routes.peers.GET(call("GET", "/api/peers", undefined, "ns_wrong"))).status).toBe(401);
  const res = await routes.peers.GET(call("GET", "/api/peers"));
  expect(res.status).toBe(200);
  const text = await res.text();
  expect(text).not.toContain(SECRET);
  expect((JSON.parse(text) as { peers: unknown[] }).peers).toEqual([
    expect.objectContaining({ name: "b", url: "https://b.example.com/api/webhooks/from-a", secret_set: true, enabled: true }),
    expect.objectContaining({ name: "c", url: "https://c.example.com/nightshift/api/webhooks/from-a", secret_set: false, enabled: false }),
  ]);
});

test("a source cannot verify with the deployment's own secrets: callbacks signed with NIGHTSHIFT_WEBHOOK_SECRET would replay into it", async () => {
  for (const name of ["NIGHTSHIFT_WEBHOOK_SECRET", "NIGHTSHIFT_SESSION_SECRET", "SUPABASE_SECRET_KEY", "INNGEST_SIGNING_KEY", "ANTHROPIC_API_KEY"]) {
    const created = await routes.list.POST(call("POST", "/api/webhook-sources", { ...github, name: "own-secret", secret_env_names: ["SOURCES_API_SECRET", name] }));
    expect(created.status, name).toBe(400);
    expect((await errorOf(created)).details?.[0]?.field).toBe("secret_env_names.1");
    const patched = await routes.one.PATCH(call("PATCH", "/api/webhook-sources/github", { secret_env_names: [name] }), params("github"));
    expect(patched.status, name).toBe(400);
  }
  expect((await sb.admin.from("webhook_sources").select("name").eq("name", "own-secret")).data).toEqual([]);
});

test("a callback_url with credentials is a 400 naming callback_url (the delivery would refuse it anyway)", async () => {
  const r = await routes.list.POST(call("POST", "/api/webhook-sources", { ...github, name: "creds", callback_url: "https://user:pw@example.com/hook" }));
  expect(r.status).toBe(400);
  expect((await errorOf(r)).details?.[0]?.field).toBe("callback_url");
});

test("a source configured in SQL with NIGHTSHIFT_WEBHOOK_SECRET does not verify with it: a callback Nightshift signed is not a delivery", async () => {
  const own = `whsec_${randomBytes(32).toString("base64")}`;
  process.env.NIGHTSHIFT_WEBHOOK_SECRET = own;
  try {
    const ins = await sb.admin.from("webhook_sources").insert({ name: "sql-own", agent_id: "research", prompt_template: "x", secret_env_names: ["NIGHTSHIFT_WEBHOOK_SECRET"] });
    expect(ins.error).toBeNull();
    const body = JSON.stringify({ type: "task.completed", task_id: "00000000-0000-4000-8000-000000000000" });
    const at = new Date();
    const replayed = await routes.inbound.POST(
      new Request("http://app.test/api/webhooks/sql-own", {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "webhook-id": "msg_task_callback",
          "webhook-timestamp": String(Math.floor(at.getTime() / 1000)),
          "webhook-signature": new Webhook(own).sign("msg_task_callback", at, body),
        },
        body,
      }),
      { params: Promise.resolve({ source: "sql-own" }) },
    );
    expect(replayed.status).toBe(503);
    expect((await sb.admin.from("tasks").select("id").eq("prompt", "x")).data).toEqual([]);
  } finally {
    delete process.env.NIGHTSHIFT_WEBHOOK_SECRET;
  }
});
