// The morning review in a real browser. Two halves:
//   - the review page itself, on approvals recorded the way inngest/approval.ts records them (request + publish):
//     the summary, the queue oldest first with its drafts and the time left, and every kind of decision — these
//     need nothing but the console and lib/approvals.ts;
//   - the whole loop through the agent run: a draft produced by run-task waits (awaitApproval), the reviewer
//     decides in the browser, and the task finishes, revises or ends rejected.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import { scenarioMarker } from "../../local/claude/server";
import { publishApproval, requestApproval } from "@/lib/approvals";
import type { AppStack } from "../support/app-stack";
import { startBrowser, type BrowserHarness } from "../support/browser";
import { reloadUntil, signIn, startConsoleStack } from "./console-stack";

let stack: AppStack;
let browser: BrowserHarness;

beforeAll(async () => {
  [stack, browser] = await Promise.all([startConsoleStack(), startBrowser()]);
});
afterEach(async () => {
  await browser?.closeContexts();
});
afterAll(async () => {
  await browser?.close();
  await stack?.stop();
});

/** A task waiting on a visible approval, recorded as inngest/approval.ts records one. No run: nothing resumes it. */
async function seedApproval(draft: string, opts: { requestedAt?: Date; timeoutSeconds?: number } = {}) {
  const { data: task, error } = await stack.sb.admin
    .from("tasks")
    .insert({ agent_id: "content", prompt: `Write: ${draft.slice(0, 20)}`, status: "running" })
    .select("id")
    .single();
  if (error) throw error;
  const at = opts.requestedAt ?? new Date();
  const row = await requestApproval(
    stack.sb.admin,
    { taskId: task.id, stage: "draft", revision: 1, draft: { text: draft }, timeoutSeconds: opts.timeoutSeconds ?? 86_400, autoAction: "reject" },
    at,
  );
  await publishApproval(stack.sb.admin, row.id, at);
  return { taskId: task.id, approvalId: row.id };
}

async function approvalRow(id: string) {
  const { data, error } = await stack.sb.admin.from("approvals").select("status,notes,decided_by,decided_via").eq("id", id).single();
  if (error) throw error;
  return data;
}

describe("the review page", () => {
  test("shows the morning summary and the pending drafts oldest first, each with the time left before the auto action", async () => {
    const older = await seedApproval("Older draft about sleep", { requestedAt: new Date(Date.now() - 3 * 3_600_000) });
    const newer = await seedApproval("Newer draft about owls");
    const { page } = await browser.newPage();
    await signIn(page, stack.appUrl);
    await page.getByRole("link", { name: "Review" }).click();
    await page.waitForURL(`${stack.appUrl}/review`);

    expect(await page.locator('[data-stat="waiting"] b').textContent()).toMatch(/^[1-9]\d*$/);
    expect(await page.locator('[data-stat="spent"] b').textContent()).toMatch(/^\$\d+\.\d+$/);
    const ids = await page.locator("article[data-approval-id]").evaluateAll((els) => els.map((e) => e.getAttribute("data-approval-id")));
    expect(ids.indexOf(older.approvalId)).toBeGreaterThanOrEqual(0);
    expect(ids.indexOf(older.approvalId)).toBeLessThan(ids.indexOf(newer.approvalId));

    const card = (id: string) => page.locator(`article[data-approval-id="${id}"]`);
    expect((await card(older.approvalId).getByTestId("draft").textContent())?.trim()).toBe("Older draft about sleep");
    // 24 h from 3 h ago: 20 h 59 min (or 21 h 0 min at a minute boundary) left.
    expect(await card(older.approvalId).getByTestId("time-left").textContent()).toMatch(/^(20 h 59|21 h 0) min left, then auto-reject/);
    expect(await card(newer.approvalId).getByTestId("time-left").textContent()).toMatch(/^(23 h 59|24 h 0) min left, then auto-reject/);
  });

  test("approve, approve with changes (with the changes required) and reject are recorded from the page", async () => {
    const a = await seedApproval("Draft to approve");
    const b = await seedApproval("Draft to change");
    const c = await seedApproval("Draft to reject");
    const { page } = await browser.newPage();
    await signIn(page, stack.appUrl);
    await page.goto(`${stack.appUrl}/review`);
    const card = (id: string) => page.locator(`article[data-approval-id="${id}"]`);

    await card(a.approvalId).getByRole("button", { name: "Approve", exact: true }).click();
    await expect.poll(() => card(a.approvalId).getByRole("status").textContent()).toMatch(/^Approved — the task goes on\./);
    expect(await approvalRow(a.approvalId)).toEqual({ status: "approved", notes: null, decided_by: "console:operator", decided_via: "console" });

    await card(b.approvalId).getByRole("button", { name: "Approve with changes" }).click();
    await expect.poll(() => card(b.approvalId).locator("p.notice[role=alert]").textContent()).toMatch(/Write the changes/);
    expect((await approvalRow(b.approvalId)).status).toBe("pending");
    await card(b.approvalId).getByLabel("Changes or feedback").fill("Shorter, and end with a question.");
    await card(b.approvalId).getByRole("button", { name: "Approve with changes" }).click();
    await expect.poll(() => card(b.approvalId).getByRole("status").textContent()).toMatch(/^Approved with changes/);
    expect(await approvalRow(b.approvalId)).toMatchObject({ status: "approved_with_changes", notes: "Shorter, and end with a question." });

    await card(c.approvalId).getByLabel("Changes or feedback").fill("Off brand.");
    await card(c.approvalId).getByRole("button", { name: "Reject" }).click();
    await expect.poll(() => card(c.approvalId).getByRole("status").textContent()).toMatch(/^Rejected/);
    expect(await approvalRow(c.approvalId)).toMatchObject({ status: "rejected", notes: "Off brand." });

    // Decided drafts leave the queue; the task page keeps the history.
    await page.reload();
    expect(await card(a.approvalId).count()).toBe(0);
    await page.goto(`${stack.appUrl}/tasks/${c.taskId}`);
    const history = page.locator(`tr[data-approval-id="${c.approvalId}"]`);
    expect(await history.locator("td[data-label=Decision]").textContent()).toContain("rejected");
    expect(await history.locator("td[data-label=By]").textContent()).toBe("console:operator");
    expect(await history.locator("td[data-label=Notes]").textContent()).toBe("Off brand.");
  });

  test("two tabs decide differently: the first wins, the second is told what stands", async () => {
    const { approvalId } = await seedApproval("Contested draft");
    const tab1 = await browser.newPage();
    const tab2 = await browser.newPage();
    await Promise.all([signIn(tab1.page, stack.appUrl), signIn(tab2.page, stack.appUrl)]);
    await Promise.all([tab1.page.goto(`${stack.appUrl}/review`), tab2.page.goto(`${stack.appUrl}/review`)]);
    const card1 = tab1.page.locator(`article[data-approval-id="${approvalId}"]`);
    const card2 = tab2.page.locator(`article[data-approval-id="${approvalId}"]`);
    await card1.getByRole("button", { name: "Approve", exact: true }).click();
    await expect.poll(() => card1.getByRole("status").textContent()).toMatch(/^Approved/);
    await card2.getByRole("button", { name: "Reject" }).click();
    await expect.poll(() => card2.locator("p.notice[role=alert]").textContent()).toMatch(/^Already decided: approved by console:operator\. Your decision was not applied\./);
    expect((await approvalRow(approvalId)).status).toBe("approved");
  });

  test("a decision after the deadline shows that the automatic action applied", async () => {
    const requestedAt = new Date(Date.now() - 50_000);
    const { approvalId } = await seedApproval("Draft about to expire", { timeoutSeconds: 60, requestedAt });
    const { page } = await browser.newPage();
    await signIn(page, stack.appUrl);
    await page.goto(`${stack.appUrl}/review`);
    const card = page.locator(`article[data-approval-id="${approvalId}"]`);
    expect(await card.getByTestId("time-left").textContent()).toMatch(/^(\d+ s left, then auto-reject|Deadline passed)/);
    // Wait until the deadline (requested + 60 s) has surely passed; the outcome, not the timing, is asserted.
    const wait = requestedAt.getTime() + 61_000 - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    await card.getByRole("button", { name: "Approve", exact: true }).click();
    await expect.poll(() => card.locator("p.notice[role=alert]").textContent()).toMatch(/^Too late: the deadline passed and the automatic action applied \(expired\)\./);
    expect((await approvalRow(approvalId)).status).toBe("expired");
  });
});

describe("through the agent run", () => {
  async function submitDraft(scenario: string): Promise<string> {
    const res = await fetch(`${stack.appUrl}/api/tasks`, {
      method: "POST",
      headers: { authorization: `Bearer ${stack.apiKey}`, "content-type": "application/json" },
      body: JSON.stringify({ agent: "content", prompt: `${scenarioMarker(scenario)} Write a launch post`, require_approval: true }),
    });
    expect(res.status).toBe(202);
    return ((await res.json()) as { task_id: string }).task_id;
  }

  async function openApproval(taskId: string) {
    const { page } = await browser.newPage();
    await signIn(page, stack.appUrl);
    await page.goto(`${stack.appUrl}/review`);
    const card = page.locator("article[data-approval-id]").filter({ has: page.locator(`a[href="/tasks/${taskId}"]`) });
    await reloadUntil(page, async () => (await card.count()) === 1, 60_000, "the draft to wait for review");
    return { page, card };
  }

  async function taskPageStatus(page: import("playwright-core").Page, taskId: string, status: string) {
    await page.goto(`${stack.appUrl}/tasks/${taskId}`);
    await expect.poll(() => page.locator("h1 .badge").textContent(), { timeout: 60_000, interval: 500 }).toBe(status);
  }

  test("approve a draft and watch the task finish", async () => {
    const scenario = "review-approve";
    stack.double.script(scenario, [{ text: "Nightshift launches today." }]);
    const taskId = await submitDraft(scenario);
    const { page, card } = await openApproval(taskId);
    expect(await card.getByTestId("draft").textContent()).toContain("Nightshift launches today.");
    expect(await card.getByTestId("time-left").textContent()).toMatch(/^(23 h 59|24 h 0) min left/);
    await card.getByRole("button", { name: "Approve", exact: true }).click();
    await expect.poll(() => card.getByRole("status").textContent()).toMatch(/^Approved/);
    await taskPageStatus(page, taskId, "completed");
    expect(await page.getByTestId("result").textContent()).toContain("Nightshift launches today.");
  });

  test("approve with changes: the notes go back to the agent and the revision is the result", async () => {
    const scenario = "review-changes";
    stack.double.script(scenario, [{ text: "First draft." }, { text: "Revised draft, shorter." }]);
    const taskId = await submitDraft(scenario);
    const { page, card } = await openApproval(taskId);
    await card.getByLabel("Changes or feedback").fill("Make it shorter please");
    await card.getByRole("button", { name: "Approve with changes" }).click();
    await expect.poll(() => card.getByRole("status").textContent()).toMatch(/^Approved with changes/);
    // If the revision is itself reviewed, approve it too.
    const deadline = Date.now() + 60_000;
    for (;;) {
      const { data } = await stack.sb.admin.from("tasks").select("status").eq("id", taskId).single();
      if (data?.status === "completed") break;
      const { data: pending } = await stack.sb.admin.from("approvals").select("id").eq("task_id", taskId).eq("status", "pending").not("visible_at", "is", null);
      if (pending?.length) {
        await page.goto(`${stack.appUrl}/review`);
        await page.locator(`article[data-approval-id="${pending[0]!.id}"]`).getByRole("button", { name: "Approve", exact: true }).click();
        await expect.poll(() => page.locator(`article[data-approval-id="${pending[0]!.id}"]`).getByRole("status").count()).toBe(1);
      }
      if (Date.now() > deadline) throw new Error("the revised task did not complete");
      await new Promise((r) => setTimeout(r, 500));
    }
    await taskPageStatus(page, taskId, "completed");
    expect(await page.getByTestId("result").textContent()).toContain("Revised draft, shorter.");
    const asked = stack.double.calls({ scenario }).map((c) => JSON.stringify(c.body ?? ""));
    expect(asked.some((b) => b.includes("Make it shorter please"))).toBe(true);
  });

  test("reject: the feedback is stored and the task ends rejected", async () => {
    const scenario = "review-reject";
    stack.double.script(scenario, [{ text: "A draft nobody wants." }]);
    const taskId = await submitDraft(scenario);
    const { page, card } = await openApproval(taskId);
    await card.getByLabel("Changes or feedback").fill("Not on brand.");
    await card.getByRole("button", { name: "Reject" }).click();
    await expect.poll(() => card.getByRole("status").textContent()).toMatch(/^Rejected/);
    await taskPageStatus(page, taskId, "rejected");
    expect(await page.locator("td[data-label=Notes]").first().textContent()).toBe("Not on brand.");
  });
});
