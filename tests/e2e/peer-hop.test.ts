// Agent to agent across two deployments: two Nightshift app instances (each `next start` + its own engine, database
// and offline model). A research task on A names B as its next hop; when it completes, A delivers its result to
// B's inbound webhook route as a signed Standard Webhooks request, which starts a content task on B. Replays of the
// same delivery make no second task on B; a tampered body and a delivery replayed 6 minutes later are refused. B's
// console (a real Chromium) shows the refusals on its Webhooks page and disables the source there.
import { randomBytes } from "node:crypto";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, expect, test } from "vitest";
import { scenarioMarker } from "../../local/claude/server";
import { startAppStack, waitUntil, type AppStack } from "../support/app-stack";
import { startBrowser, type BrowserHarness } from "../support/browser";
import { OPERATOR_PASSWORD, SESSION_SECRET, signIn } from "../browser/console-stack";

const SHARED = `whsec_${randomBytes(32).toString("base64")}`;
let a: AppStack;
let b: AppStack;
let browser: BrowserHarness;

beforeAll(async () => {
  [a, b] = await Promise.all([
    // A signs hops to B with the variable its peer row names; loopback is allowed for this test only.
    startAppStack({ env: { PEER_B_SECRET: SHARED, NIGHTSHIFT_FETCH_ALLOW: "127.0.0.1" } }),
    startAppStack({ env: { PEER_A_SECRET: SHARED, NIGHTSHIFT_OPERATOR_PASSWORD: OPERATOR_PASSWORD, NIGHTSHIFT_SESSION_SECRET: SESSION_SECRET } }),
  ]);
  const peer = await a.sb.admin.from("peers").insert({ name: "b", base_url: b.appUrl, source: "from-a", secret_env_name: "PEER_B_SECRET" });
  expect(peer.error).toBeNull();
  const source = await b.sb.admin.from("webhook_sources").insert({
    name: "from-a",
    agent_id: "content",
    prompt_template: "Write a short post from this research: {{payload.result.text}}",
    input_mapping: { from_task: "payload.task_id", from_peer: "payload.peer" },
    secret_env_names: ["PEER_A_SECRET"],
  });
  expect(source.error).toBeNull();
});
afterAll(async () => {
  await browser?.close();
  await Promise.all([a?.stop(), b?.stop()]);
});

const output = () => `${a.output()}\n${b.output()}`.split("\n");

async function tasksOnB(key: string) {
  const { data, error } = await b.sb.admin.from("tasks").select("id,agent_id,prompt,input").eq("idempotency_key", key);
  expect(error).toBeNull();
  return data!;
}

test("a completed research task on A starts a content task on B; replays make no second task; forgeries are refused", async () => {
  // An unknown peer is a 400 naming next_hop, and nothing is recorded.
  const bad = await fetch(`${a.appUrl}/api/tasks`, {
    method: "POST",
    headers: { authorization: `Bearer ${a.apiKey}`, "content-type": "application/json" },
    body: JSON.stringify({ agent: "research", prompt: "x", next_hop: "nowhere" }),
  });
  expect(bad.status).toBe(400);
  expect(JSON.stringify(await bad.json())).toContain("next_hop");

  const scenario = "e2e-hop";
  a.double.script(scenario, [{ text: "Findings: durable steps halve rework." }]);
  const res = await fetch(`${a.appUrl}/api/tasks`, {
    method: "POST",
    headers: { authorization: `Bearer ${a.apiKey}`, "content-type": "application/json" },
    body: JSON.stringify({ agent: "research", prompt: `${scenarioMarker(scenario)} Research durable steps.`, next_hop: "b" }),
  });
  expect(res.status).toBe(202);
  const { task_id } = (await res.json()) as { task_id: string };
  const status = await fetch(`${a.appUrl}/api/tasks/${task_id}`, { headers: { authorization: `Bearer ${a.apiKey}` } });
  expect(((await status.json()) as { next_hop: string }).next_hop).toBe("b");

  // The hop is delivered (recorded per attempt on A) and B has the task it started.
  const messageId = `msg_task_hop_${task_id}`;
  const key = `webhook:from-a:${messageId}`;
  await waitUntil(async () => (await tasksOnB(key)).length === 1, 90_000, "the hop to start a task on B", output());
  const [onB] = await tasksOnB(key);
  expect(onB).toMatchObject({ agent_id: "content", input: { from_task: task_id, from_peer: "b" } });
  expect(onB!.prompt).toBe("Write a short post from this research: Findings: durable steps halve rework.");
  await waitUntil(
    async () => (await a.sb.admin.from("webhook_deliveries").select("status").eq("message_id", messageId).single()).data?.status === "delivered",
    30_000,
    "A to record the delivery",
    output(),
  );
  const { data: delivery } = await a.sb.admin
    .from("webhook_deliveries")
    .select("kind,url,payload,attempts,webhook_delivery_attempts(outcome,status_code)")
    .eq("message_id", messageId)
    .single();
  expect(delivery).toMatchObject({ kind: "peer", url: `${b.appUrl}/api/webhooks/from-a` });
  // Normally one attempt; on a loaded machine an attempt may time out and be retried (B then answers the repeat
  // with the same task): either way the last attempt delivered.
  expect(delivery!.webhook_delivery_attempts.at(-1)).toEqual({ outcome: "delivered", status_code: 202 });

  // Replays of the same delivery (same webhook-id, freshly signed, as a retrying sender would): one task on B.
  const body = delivery!.payload;
  const send = (payload: string, at: Date, signedBody = payload) =>
    fetch(`${b.appUrl}/api/webhooks/from-a`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "webhook-id": messageId,
        "webhook-timestamp": String(Math.floor(at.getTime() / 1000)),
        "webhook-signature": new Webhook(SHARED).sign(messageId, at, signedBody),
      },
      body: payload,
    });
  const replays = await Promise.all(Array.from({ length: 10 }, () => send(body, new Date())));
  expect(replays.map((r) => r.status)).toEqual(Array(10).fill(202));
  const answers = (await Promise.all(replays.map((r) => r.json()))) as { task_id: string; duplicate: boolean }[];
  expect(new Set(answers.map((x) => x.task_id))).toEqual(new Set([onB!.id]));
  expect(answers.every((x) => x.duplicate)).toBe(true);
  expect(await tasksOnB(key)).toHaveLength(1);

  // A tampered body (signature over the original) and the genuine delivery replayed 6 minutes later: refused.
  const tampered = await send(body.replace("halve", "triple"), new Date(), body);
  expect(tampered.status).toBe(401);
  expect(((await tampered.json()) as { error: { code: string } }).error.code).toBe("invalid_signature");
  const stale = await send(body, new Date(Date.now() - 6 * 60_000));
  expect(stale.status).toBe(401);
  expect(((await stale.json()) as { error: { code: string } }).error.code).toBe("timestamp_out_of_tolerance");
  expect(await tasksOnB(key)).toHaveLength(1);
  const { data: refusals } = await b.sb.admin.from("webhook_refusals").select("reason,count").eq("source", "from-a").order("reason");
  expect(refusals!.map((r) => [r.reason, Number(r.count)])).toEqual([
    ["bad_signature", 1],
    ["stale_timestamp", 1],
  ]);
});

test("B's console shows the source's refusal counters and disables it (audited as the operator)", async () => {
  // Its own refusals, so this test stands alone: one delivery with a bad signature.
  const at = new Date();
  const forged = await fetch(`${b.appUrl}/api/webhooks/from-a`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "webhook-id": "msg_console_check",
      "webhook-timestamp": String(Math.floor(at.getTime() / 1000)),
      "webhook-signature": new Webhook(`whsec_${randomBytes(32).toString("base64")}`).sign("msg_console_check", at, "{}"),
    },
    body: "{}",
  });
  expect(forged.status).toBe(401);
  const { data: counted } = await b.sb.admin.from("webhook_refusals").select("count").eq("source", "from-a").eq("reason", "bad_signature").single();

  browser = await startBrowser();
  const { page } = await browser.newPage();
  await signIn(page, b.appUrl);
  await page.getByRole("link", { name: "Webhooks" }).click();
  await page.waitForURL(`${b.appUrl}/webhooks`);
  const row = page.locator('tr[data-source="from-a"]');
  await expect(row.getAttribute("data-source")).resolves.toBe("from-a");
  const refused = row.locator("td[data-label=Refused]");
  await expect(refused.textContent()).resolves.toContain(`${Number(counted!.count)} bad signature`);
  await expect(row.textContent()).resolves.toContain("1 of 1 set");

  await row.getByRole("button", { name: "Disable" }).click();
  await waitUntil(async () => (await b.sb.admin.from("webhook_sources").select("enabled").eq("name", "from-a").single()).data?.enabled === false, 30_000, "the source to be disabled");
  const { data: change } = await b.sb.admin.from("webhook_source_changes").select("actor,changes").eq("source", "from-a").order("id", { ascending: false }).limit(1).single();
  expect(change).toMatchObject({ actor: "console:operator", changes: { enabled: { from: true, to: false } } });
  await page.reload();
  await expect(page.locator('tr[data-source="from-a"]').getByRole("button", { name: "Enable" }).isVisible()).resolves.toBe(true);
});
