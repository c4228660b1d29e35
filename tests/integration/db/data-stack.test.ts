// The embedded stack `npm run dev` starts: its own Postgres in a data directory, migrated and seeded, and
// PostgREST behind the /rest/v1 proxy. A restart on the same directory keeps the data and the keys.
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect, test } from "vitest";
import { createAdminClient } from "../../../lib/db/admin";
import { startDataStack, type DataStack } from "../../../local/data-stack";
import { createTestSupabase } from "../../support/supabase";

const dirs: string[] = [];
const stacks: DataStack[] = [];
afterAll(async () => {
  await Promise.all(stacks.map((s) => s.stop()));
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

test("a persistent stack keeps its data and keys across a restart", async () => {
  const dataDir = await mkdtemp(join(tmpdir(), "nightshift-stack-"));
  dirs.push(dataDir);
  const lines: string[] = [];

  const first = await startDataStack({ dataDir, persistent: true, log: (l) => lines.push(l) });
  stacks.push(first);
  expect(first.supabaseUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  const admin = createAdminClient({ url: first.supabaseUrl, secretKey: first.secretKey });
  const { data: created, error } = await admin.rpc("create_task", {
    p_agent_id: "content",
    p_prompt: "Draft the newsletter.",
    p_input: null as never,
    p_priority: 0,
    p_mode: "batch",
    p_require_approval: true,
    p_callback_url: null as never,
    p_api_key_id: null as never,
    p_idempotency_key: null as never,
    p_request_hash: null as never,
  });
  expect(error).toBeNull();
  const taskId = created![0]!.task_id;

  // Only /rest/v1 is proxied; anything else is a JSON 404, never PostgREST's root.
  const other = await fetch(`${first.supabaseUrl}/auth/v1/settings`);
  expect(other.status).toBe(404);
  expect(other.headers.get("content-type")).toMatch(/application\/json/);
  await other.json();
  await first.stop();
  expect(lines.some((l) => /applied \d+ migration/.test(l))).toBe(true);

  const second = await startDataStack({ dataDir, persistent: true, log: (l) => lines.push(l) });
  stacks.push(second);
  expect(second.anonKey).toBe(first.anonKey);
  expect(second.secretKey).toBe(first.secretKey);
  expect((await stat(join(dataDir, "jwt-secret"))).mode & 0o777).toBe(0o600);
  const again = createAdminClient({ url: second.supabaseUrl, secretKey: second.secretKey });
  const { data: task } = await again.from("tasks").select("id, agent_id, mode, require_approval").eq("id", taskId).single();
  expect(task).toEqual({ id: taskId, agent_id: "content", mode: "batch", require_approval: true });
  expect(lines.some((l) => /migrations up to date/.test(l))).toBe(true);

  // A key signed with another secret is refused.
  const { anonKey } = await createTestSupabase().then(async (t) => {
    await t.stop();
    return t;
  });
  const res = await fetch(`${second.supabaseUrl}/rest/v1/agents`, { headers: { apikey: anonKey, authorization: `Bearer ${anonKey}` } });
  expect(res.status).toBe(401);
  await res.body?.cancel();
  await second.stop();
});

test("createTestSupabase gives a private, migrated and seeded stack", async () => {
  const started = performance.now();
  const sb = await createTestSupabase();
  const ms = performance.now() - started;
  try {
    const { data, error } = await sb.admin.from("agents").select("id").order("id");
    expect(error).toBeNull();
    expect(data!.map((a) => a.id)).toEqual(["content", "outreach", "research"]);
  } finally {
    await sb.stop();
  }
  console.log(`createTestSupabase: ${ms.toFixed(0)} ms`);
});
