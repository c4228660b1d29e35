// The Failed page in a real browser, on the whole system (next start, the local engine, the offline double): tasks that
// failed for good through real runs land in the dead-letter queue; the operator replays one with an edited prompt,
// discards one with a note, and replays a selection; the breaker panel shows a dependency that is down; the morning
// review counts the night's dead letters.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import { scenarioMarker } from "../../local/claude/server";
import type { AppStack } from "../support/app-stack";
import { startBrowser, type BrowserHarness } from "../support/browser";
import { until } from "../support/engine-harness";
import { sql } from "../integration/db/sql";
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

/** Submits a task through the API whose model call is refused (400): it fails at once into the dead-letter queue. */
async function failingTask(name: string): Promise<{ taskId: string; deadLetterId: string }> {
  stack.double.script(name, [{ error: { status: 400, message: `bad request for ${name}` } }]);
  const res = await fetch(`${stack.appUrl}/api/tasks`, {
    method: "POST",
    headers: { authorization: `Bearer ${stack.apiKey}`, "content-type": "application/json" },
    body: JSON.stringify({ agent: "outreach", prompt: `${scenarioMarker(name)} Draft a note for ${name}.` }),
  });
  expect(res.status).toBe(202);
  const { task_id: taskId } = await res.json();
  const dl = await until(async () => (await stack.sb.admin.from("dead_letters").select("id").eq("task_id", taskId).maybeSingle()).data, {
    timeoutMs: 60_000,
    message: `no dead letter for ${name}`,
  });
  return { taskId, deadLetterId: dl.id };
}

describe("the Failed page", () => {
  test("replay (edited) and discard from the page; replay a selection; the breaker panel; the morning count", async () => {
    const [a, b, c, d] = (await Promise.all(["fp-replay", "fp-discard", "fp-sel-1", "fp-sel-2"].map(failingTask))) as [
      Awaited<ReturnType<typeof failingTask>>,
      Awaited<ReturnType<typeof failingTask>>,
      Awaited<ReturnType<typeof failingTask>>,
      Awaited<ReturnType<typeof failingTask>>,
    ];
    // A dependency that is down: 5 outage failures open its breaker.
    for (let i = 0; i < 5; i++) {
      await sql(stack.sb.databaseUrl, "select * from public.breaker_record('web_fetch:docs.example.com', false, true, 'docs.example.com had a server error (503).', now(), 5, 60, 1800)");
    }

    const { page } = await browser.newPage();
    await signIn(page, stack.appUrl);
    await page.getByRole("link", { name: "Failed" }).click();
    await page.waitForURL(`${stack.appUrl}/failed`);

    const row = page.locator('[data-testid="breakers"] tr[data-dependency="web_fetch:docs.example.com"]');
    expect(await row.getAttribute("data-state")).toBe("open");
    expect(await row.textContent()).toContain("docs.example.com had a server error (503).");

    const card = (id: string) => page.locator(`article[data-dead-letter-id="${id}"]`);
    expect(await card(a.deadLetterId).getByTestId("error-in-words").textContent()).toBe("Claude refused the request as invalid (400): bad request for fp-replay.");
    expect(await card(a.deadLetterId).textContent()).toContain("Failed in turn-1 after 1 attempt");

    // Replay with an edited prompt: the double answers the new scenario.
    await card(a.deadLetterId).getByText("Replay or discard").click();
    await card(a.deadLetterId).getByLabel("Prompt (edit before replaying, or keep it)").fill(`${scenarioMarker("fp-replayed")} Draft a shorter note.`);
    await card(a.deadLetterId).getByRole("button", { name: "Replay", exact: true }).click();
    await card(a.deadLetterId).locator('[data-outcome="replayed"]').waitFor();
    const replayed = await until(async () => {
      const { data } = await stack.sb.admin.from("tasks").select("id,status,prompt,replay_of").eq("replay_of", a.taskId).maybeSingle();
      return data?.status === "completed" ? data : undefined;
    }, { timeoutMs: 60_000, message: "the replayed task did not complete" });
    expect(replayed.prompt).toContain("Draft a shorter note.");

    // Discard with a note.
    await card(b.deadLetterId).getByText("Replay or discard").click();
    await card(b.deadLetterId).getByLabel("Note (why it is discarded)").fill("Not needed any more");
    await card(b.deadLetterId).getByRole("button", { name: "Discard" }).click();
    await card(b.deadLetterId).locator('[data-outcome="discarded"]').waitFor();
    const { data: discarded } = await stack.sb.admin.from("dead_letters").select("status,discard_note,resolved_by").eq("id", b.deadLetterId).single();
    expect(discarded).toEqual({ status: "discarded", discard_note: "Not needed any more", resolved_by: "console:operator" });

    // Replay a selection.
    await page.reload();
    await card(c.deadLetterId).getByLabel("Select for replay").check();
    await card(d.deadLetterId).getByLabel("Select for replay").check();
    await page.getByRole("button", { name: "Replay selected" }).click();
    await page.locator('form#replay-selected [data-outcome="replayed"]').waitFor();
    expect(await page.locator("form#replay-selected [role=status]").textContent()).toContain("Replayed 2");
    const { data: rest } = await stack.sb.admin.from("dead_letters").select("id,status,replayed_task_id").in("id", [c.deadLetterId, d.deadLetterId]);
    expect(rest!.map((r) => r.status)).toEqual(["replayed", "replayed"]);

    // Nothing pending is left; the replayed ones show their new task.
    await reloadUntil(page, async () => (await page.locator("article[data-dead-letter-id]").count()) === 0, 10_000, "the pending list to empty");
    await page.goto(`${stack.appUrl}/failed?status=replayed`);
    expect(await card(a.deadLetterId).textContent()).toContain(`Replayed as task ${replayed.id.slice(0, 8)}`);

    // A report built from cached research carries a visible mark, and the morning summary counts it.
    const [pl] = await sql<{ pipeline_id: string }>(stack.sb.databaseUrl, "select pipeline_id from public.create_pipeline('Owls at night', 'research', null, null, repeat('c', 64))");
    await sql(stack.sb.databaseUrl, `update public.pipelines set degraded = '{"reason":"claude:claude-sonnet-4-6 is down","cached_at":"2030-01-02T03:04:05+00:00"}' where id = $1`, [pl!.pipeline_id]);
    await page.goto(`${stack.appUrl}/pipelines`);
    expect(await page.locator(`article[data-pipeline-id="${pl!.pipeline_id}"] [data-degraded]`).textContent()).toBe("degraded: cached research of 2030-01-02");

    await page.goto(`${stack.appUrl}/review`);
    expect(Number(await page.locator('[data-stat="dead-letters"] b').textContent())).toBeGreaterThanOrEqual(4);
    expect(Number(await page.locator('[data-stat="degraded"] b').textContent())).toBe(1);
  });
});
