// The side-venture morning, end to end in a real Chromium against the whole system (`next start` + the local
// engine + embedded Supabase + the offline Claude double):
//   1. overnight, 10 content drafts are produced by tasks submitted over the HTTP API, each with a callback_url
//      on a capture server that stands in for the owner's publishing endpoint;
//   2. in the morning the owner signs in, opens /review and, with the page's own buttons, approves 7 and
//      rejects 3 (with feedback);
//   3. exactly 7 tasks complete and 3 end rejected; the capture server received 7 `completed` callbacks (each
//      approved task once, carrying its own draft) and 3 `rejected` ones; no task was called back twice.
// Every wait polls a condition with a deadline. "No second callback" is checked once every run has ended in the
// engine: a run that has ended runs no further step, so nothing can be delivered after that.
import { afterAll, afterEach, beforeAll, expect, test } from "vitest";
import { scenarioMarker } from "../../local/claude/server";
import { Webhook } from "standardwebhooks";
import type { AppStack } from "../support/app-stack";
import { startBrowser, type BrowserHarness } from "../support/browser";
import { startCaptureServer, type CaptureServer, type CapturedRequest } from "../support/capture-server";
import { reloadUntil, signIn, startConsoleStack } from "./console-stack";

const WEBHOOK_SECRET = `whsec_${Buffer.from("morning-test-webhook-secret-0123").toString("base64")}`;
const DRAFTS = 10;
/** Which drafts the owner rejects (the rest are approved): spread through the queue, not the last three. */
const REJECTED = new Set([2, 5, 8]);
const TERMINAL = ["completed", "failed", "stopped", "rejected", "cancelled"];

let stack: AppStack;
let browser: BrowserHarness;
let hooks: CaptureServer;

beforeAll(async () => {
  hooks = await startCaptureServer({
    handler: (req, res) => {
      res.writeHead(req.method === "POST" && req.url === "/publish" ? 204 : 404).end();
    },
  });
  [stack, browser] = await Promise.all([
    // Callbacks go to 127.0.0.1, which the app refuses unless allow-listed.
    startConsoleStack({ NIGHTSHIFT_FETCH_ALLOW: "127.0.0.1", NIGHTSHIFT_WEBHOOK_SECRET: WEBHOOK_SECRET }),
    startBrowser(),
  ]);
});
afterEach(async () => {
  await browser?.closeContexts();
});
afterAll(async () => {
  await browser?.close();
  await stack?.stop();
  await hooks?.stop();
});

/** Polls `probe` until it returns a value other than undefined/false; fails at the deadline with `what`. */
async function until<T>(probe: () => Promise<T | undefined | false>, what: string, timeoutMs = 90_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v as T;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${last instanceof Error ? ` (last error: ${last.message})` : ""}\n` +
          stack.output().split("\n").slice(-30).join("\n"),
      );
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

const draftText = (i: number) => `Morning post ${i}: ${["owls", "sleep", "tea", "stars", "rain", "bread", "maps", "bees", "snow", "jazz"][i]} at night.`;

async function submitDraftTask(i: number): Promise<string> {
  const scenario = `morning-${i}`;
  stack.double.script(scenario, [{ text: draftText(i) }]);
  const res = await fetch(`${stack.appUrl}/api/tasks`, {
    method: "POST",
    headers: { authorization: `Bearer ${stack.apiKey}`, "content-type": "application/json" },
    body: JSON.stringify({
      agent: "content",
      prompt: `${scenarioMarker(scenario)} Write tonight's post number ${i}.`,
      callback_url: `${hooks.url}/publish`,
    }),
  });
  expect(res.status, await res.clone().text()).toBe(202);
  return ((await res.json()) as { task_id: string }).task_id;
}

const callbacks = (): CapturedRequest[] => hooks.requests.filter((r) => r.method === "POST" && r.url === "/publish");
const payload = (r: CapturedRequest) => r.json as { type: string; task_id: string; status: string; result?: { text?: string } };

test("the side-venture morning: 10 drafts overnight, 7 approved and 3 rejected in the browser, exactly 7 published once each", { timeout: 240_000 }, async () => {
  // --- 1. overnight: 10 drafts, each its own scripted text, each waiting for review ---
  const taskIds = await Promise.all(Array.from({ length: DRAFTS }, (_, i) => submitDraftTask(i)));
  const approvals = await until(async () => {
    const { data, error } = await stack.sb.admin
      .from("approvals")
      .select("id,task_id,status,draft")
      .in("task_id", taskIds)
      .not("visible_at", "is", null);
    if (error) throw error;
    return data.length === DRAFTS ? data : undefined;
  }, "all 10 approvals to be visible");
  const approvalOf = new Map(approvals.map((a) => [a.task_id, a]));
  for (const [i, id] of taskIds.entries()) {
    expect(approvalOf.get(id)).toMatchObject({ status: "pending", draft: { text: draftText(i) } });
  }
  const { data: waiting } = await stack.sb.admin.from("tasks").select("id,status").in("id", taskIds);
  expect(waiting!.map((t) => t.status)).toEqual(Array(DRAFTS).fill("waiting_approval"));
  // Nothing is published before a decision.
  expect(callbacks()).toHaveLength(0);

  // --- 2. the morning: sign in, open the review page, decide each draft with the page's own buttons ---
  const { page } = await browser.newPage();
  await signIn(page, stack.appUrl);
  await page.getByRole("link", { name: "Review" }).click();
  await page.waitForURL(`${stack.appUrl}/review`);
  const card = (taskId: string) => page.locator("article[data-approval-id]").filter({ has: page.locator(`a[href="/tasks/${taskId}"]`) });
  await reloadUntil(
    page,
    async () => (await Promise.all(taskIds.map(async (id) => (await card(id).count()) === 1))).every(Boolean),
    60_000,
    "all 10 drafts on the review page",
  );
  expect(await page.getByRole("heading", { name: `Waiting for you (${DRAFTS})` }).isVisible()).toBe(true);
  expect(await page.locator('[data-stat="waiting"] b').textContent()).toBe(String(DRAFTS));

  for (const [i, id] of taskIds.entries()) {
    const c = card(id);
    expect(await c.getAttribute("data-approval-id")).toBe(approvalOf.get(id)!.id);
    expect(await c.getByTestId("draft").textContent()).toContain(draftText(i));
    if (REJECTED.has(i)) {
      await c.getByLabel("Changes or feedback").fill(`Not this one (${i}).`);
      await c.getByRole("button", { name: "Reject" }).click();
      await expect.poll(() => c.getByRole("status").textContent()).toMatch(/^Rejected — the feedback is stored/);
    } else {
      await c.getByRole("button", { name: "Approve", exact: true }).click();
      await expect.poll(() => c.getByRole("status").textContent()).toMatch(/^Approved — the task goes on\./);
    }
  }

  // Every decision is recorded as the console's, with the feedback on the rejections.
  const { data: decided } = await stack.sb.admin.from("approvals").select("task_id,status,notes,decided_by,decided_via").in("task_id", taskIds);
  for (const [i, id] of taskIds.entries()) {
    expect(decided!.find((a) => a.task_id === id)).toMatchObject(
      REJECTED.has(i)
        ? { status: "rejected", notes: `Not this one (${i}).`, decided_by: "console:operator", decided_via: "console" }
        : { status: "approved", notes: null, decided_by: "console:operator", decided_via: "console" },
    );
  }

  // --- 3. the outcome: every task ends, every run ends in the engine, every callback delivery ends ---
  const tasks = await until(async () => {
    const { data, error } = await stack.sb.admin.from("tasks").select("id,status,status_reason,run_id,result").in("id", taskIds);
    if (error) throw error;
    return data.every((t) => TERMINAL.includes(t.status)) ? data : undefined;
  }, "all 10 tasks to end");
  const runIds = tasks.map((t) => t.run_id);
  expect(runIds.every((r) => typeof r === "string" && r.length > 0)).toBe(true);
  await until(async () => {
    const runs = await Promise.all(
      runIds.map(async (r) => ((await (await fetch(`${stack.engineUrl}/v0/runs/${r}`)).json()) as { status: string }).status),
    );
    return runs.every((s) => ["completed", "failed", "cancelled"].includes(s)) ? runs : undefined;
  }, "all 10 runs to end in the engine");
  // Callbacks are delivered by their own function (nightshift-deliver-task-callback), started when each task ends: wait
  // for one per task, then for every delivery run to end, so that a second callback for a task would have come by now.
  await until(async () => new Set(callbacks().map((h) => payload(h).task_id)).size >= DRAFTS || undefined, "a callback for each of the 10 tasks");
  await until(async () => {
    const { data } = (await (await fetch(`${stack.engineUrl}/v0/runs?function_id=nightshift-deliver-task-callback`)).json()) as { data: { status: string }[] };
    return data.length >= DRAFTS && data.every((r) => ["completed", "failed", "cancelled"].includes(r.status)) ? data : undefined;
  }, "every callback delivery run to end");

  const statusOf = new Map(tasks.map((t) => [t.id, t]));
  const approvedIds = taskIds.filter((_, i) => !REJECTED.has(i));
  const rejectedIds = taskIds.filter((_, i) => REJECTED.has(i));
  expect(tasks.filter((t) => t.status === "completed")).toHaveLength(7);
  expect(tasks.filter((t) => t.status === "rejected")).toHaveLength(3);
  for (const id of approvedIds) expect(statusOf.get(id)!.status).toBe("completed");
  for (const id of rejectedIds) {
    const i = taskIds.indexOf(id);
    expect(statusOf.get(id)).toMatchObject({ status: "rejected", status_reason: `rejected: Not this one (${i}).` });
  }

  // The capture server: one callback per task, 7 `completed` (the approved ones, each with its own draft), 3
  // `rejected`, each signed.
  const hooksSeen = callbacks();
  const perTask = new Map<string, CapturedRequest[]>();
  for (const h of hooksSeen) perTask.set(payload(h).task_id, [...(perTask.get(payload(h).task_id) ?? []), h]);
  expect([...perTask.entries()].filter(([, hs]) => hs.length > 1).map(([id]) => id), "tasks called back more than once").toEqual([]);
  expect(hooksSeen).toHaveLength(DRAFTS);
  const completedHooks = hooksSeen.filter((h) => payload(h).status === "completed");
  const rejectedHooks = hooksSeen.filter((h) => payload(h).status === "rejected");
  expect(completedHooks).toHaveLength(7);
  expect(rejectedHooks).toHaveLength(3);
  expect(new Set(completedHooks.map((h) => payload(h).task_id))).toEqual(new Set(approvedIds));
  expect(new Set(rejectedHooks.map((h) => payload(h).task_id))).toEqual(new Set(rejectedIds));
  for (const h of completedHooks) {
    const i = taskIds.indexOf(payload(h).task_id);
    expect(payload(h)).toMatchObject({ type: "task.finished", status: "completed", result: { text: draftText(i) } });
  }
  // Standard Webhooks: verified by the receiver's library (signature and timestamp).
  for (const h of hooksSeen) new Webhook(WEBHOOK_SECRET).verify(h.body, h.headers as Record<string, string>);

  // And the console agrees: the queue is empty, and the morning summary counts the 7 finished.
  await page.goto(`${stack.appUrl}/review`);
  expect(await page.locator("article[data-approval-id]").count()).toBe(0);
  expect(await page.locator('[data-stat="completed"] b').textContent()).toBe("7");
  expect(await page.locator('[data-stat="waiting"] b').textContent()).toBe("0");
});
