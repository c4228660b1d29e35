// The console's newer pages in a real Chromium against `next start` + the local engine + embedded Supabase + offline
// Claude: a task page with its markdown result (sanitised, raw one click away), artifacts and step bars; the
// Agents page (spend chart, settings, edit form with audit); the Pipelines page; and edit-then-approve on /review,
// through the real run, where the edited text is what the task publishes. Each page is also captured at 1280 and
// 375 px into test-results/screenshots/ (git-ignored), and checked for headers broken mid-word and sideways scroll.
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, expect, test } from "vitest";
import { scenarioMarker } from "../../local/claude/server";
import type { AppStack } from "../support/app-stack";
import { startBrowser, type BrowserHarness } from "../support/browser";
import { reloadUntil, signIn, startConsoleStack } from "./console-stack";

export const SCREENSHOT_DIR = join(process.cwd(), "test-results", "screenshots");

let stack: AppStack;
let browser: BrowserHarness;

beforeAll(async () => {
  [stack, browser] = await Promise.all([startConsoleStack(), startBrowser()]);
  await mkdir(SCREENSHOT_DIR, { recursive: true });
});
afterEach(async () => {
  await browser?.closeContexts();
});
afterAll(async () => {
  await browser?.close();
  await stack?.stop();
});

async function api(path: string, body: Record<string, unknown>): Promise<{ task_id: string; pipeline_id: string }> {
  const res = await fetch(`${stack.appUrl}${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${stack.apiKey}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  expect(res.status).toBe(202);
  return (await res.json()) as { task_id: string; pipeline_id: string };
}

async function taskRow(id: string) {
  const { data } = await stack.sb.admin.from("tasks").select("status,result").eq("id", id).single();
  return data!;
}

async function until<T>(fn: () => Promise<T | undefined | false>, what: string, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

/** Layout checks at the page's width, then a full-page screenshot named for the page and the width. */
async function checkLayout(page: Page, name: string): Promise<void> {
  for (const width of [1280, 375]) {
    await page.setViewportSize({ width, height: 900 });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    // On failure, name the elements that stick out so the fix is obvious.
    const culprits =
      overflow > 0
        ? await page.evaluate(() =>
            [...document.querySelectorAll("body *")]
              .filter((e) => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1)
              .slice(0, 5)
              .map((e) => `${e.tagName.toLowerCase()}.${[...e.classList].join(".")}`),
          )
        : [];
    expect(overflow, `${name} scrolls sideways at ${width} px: ${culprits.join(", ")}`).toBeLessThanOrEqual(0);
    // A header cell whose text broke inside a word is taller than one line (e.g. "Progres" / "s").
    const broken = await page.evaluate(() =>
      [...document.querySelectorAll("th")]
        .filter((th) => (th as HTMLElement).offsetParent !== null)
        .filter((th) => {
          const range = document.createRange();
          range.selectNodeContents(th);
          return range.getClientRects().length > 1;
        })
        .map((th) => th.textContent),
    );
    expect(broken, `${name}: headers wrapped at ${width} px`).toEqual([]);
    await page.screenshot({ path: join(SCREENSHOT_DIR, `${name}-${width}.png`), fullPage: true });
  }
  await page.setViewportSize({ width: 1280, height: 900 });
}

test("a task page renders the markdown result sanitised (raw one click away), lists its artifacts and draws its steps as bars", async () => {
  const scenario = "browser-markdown";
  const answer = "# Findings\n\nDurable execution is **checkpointed**.\n\n<script>window.__pwned = 1</script>\n\n[docs](javascript:alert(1))\n\n- one\n- two";
  stack.double.script(scenario, [{ text: "Looking.\n\n", stop_reason: "max_tokens" }, { text: answer }]);
  const { task_id: id } = await api("/api/tasks", { agent: "research", prompt: `${scenarioMarker(scenario)} Findings please` });
  await until(async () => (await taskRow(id)).status === "completed", "the task to complete");
  const { saveArtifact } = await import("@/lib/artifacts");
  const art = await saveArtifact(stack.sb.admin, {
    taskId: id,
    toolUseId: "toolu_browser",
    name: "notes.md",
    contentType: "text/markdown",
    content: "## Notes\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n<img src=x onerror=alert(1)>",
  });

  const { page } = await browser.newPage();
  await signIn(page, stack.appUrl);
  await page.goto(`${stack.appUrl}/tasks/${id}`);
  const result = page.getByTestId("result");
  expect(await result.locator("h1").textContent()).toBe("Findings");
  expect(await result.locator("strong").textContent()).toBe("checkpointed");
  expect(await result.locator("li").count()).toBe(2);
  // No script, no javascript: link, and the script tag shows as text only in the raw view.
  expect(await result.locator("script").count()).toBe(0);
  expect(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).toBeUndefined();
  expect(await result.locator('a[href^="javascript"]').count()).toBe(0);
  const raw = page.getByTestId("result-raw");
  expect(await raw.isVisible()).toBe(false);
  await page.getByText("Raw text").first().click();
  expect(await raw.isVisible()).toBe(true);
  expect(await raw.textContent()).toContain("**checkpointed**");

  expect(await page.getByTestId("progress").locator("b").textContent()).toBe("2 turns (limit 10)");
  const bars = page.getByTestId("timeline");
  expect(await bars.locator('[data-bar="turn-1"][data-kind="model"]').count()).toBe(1);
  expect(await bars.locator('[data-bar="turn-2"] .tl-figures').textContent()).toMatch(/\d+(\.\d+)? (ms|s) · \$0\.\d{4}$/);

  const row = page.locator(`tr[data-artifact-id="${art.artifact_id}"]`);
  expect(await row.locator("td[data-label=Type]").textContent()).toBe("text/markdown");
  expect(await row.locator("td[data-label=Size]").textContent()).toMatch(/^\d+ B$/);
  await checkLayout(page, "task");

  await row.getByRole("link", { name: "notes.md" }).click();
  await page.waitForURL(`${stack.appUrl}/artifacts/${art.artifact_id}`);
  const view = page.getByTestId("artifact");
  expect(await view.locator("h2").textContent()).toBe("Notes");
  expect(await view.locator("table td").allTextContents()).toEqual(["1", "2"]);
  expect(await view.locator("img").count()).toBe(0);
  expect(await page.getByTestId("artifact-meta").textContent()).toContain("text/markdown");
  await checkLayout(page, "artifact");
});

test("the Agents page shows settings, spend today, concurrency and the 14-day chart; its form changes an agent and the change is audited", async () => {
  const { page } = await browser.newPage();
  await signIn(page, stack.appUrl);
  await page.getByRole("link", { name: "Agents" }).click();
  await page.waitForURL(`${stack.appUrl}/agents`);
  const chart = page.getByTestId("spend-chart");
  expect(await chart.locator("figure[data-agent]").count()).toBe(3);
  expect(await chart.locator('figure[data-agent="research"] rect[data-day]').count()).toBe(14);
  expect(await chart.locator('figure[data-agent="research"] path.cap').count()).toBe(1);
  // The research task of the first test spent money today: its bar is not empty, and its model is listed.
  expect(await chart.locator('[data-model="claude-sonnet-4-6"]').count()).toBe(1);
  const card = page.locator('section[data-agent-id="outreach"]');
  expect(await card.locator('[data-stat="concurrency"] b').textContent()).toMatch(/^\d+ of 2$/);
  expect(await card.locator('[data-stat="spend-today"] .muted').textContent()).toMatch(/^of \$1\.00 · \d{4}-\d{2}-\d{2} \(UTC\)$/);
  await checkLayout(page, "agents");

  await card.getByText("Edit settings").click();
  await card.getByLabel("Daily budget (USD)").fill("abc");
  await card.getByRole("button", { name: "Save outreach" }).click();
  await expect.poll(() => card.locator("p.notice[role=alert]").textContent()).toMatch(/Daily budget: write an amount in dollars/);

  await card.getByLabel("Daily budget (USD)").fill("3.25");
  await card.getByLabel("Max turns").fill("5");
  await card.getByLabel("Budget time zone").fill("Europe/Berlin");
  await card.getByRole("button", { name: "Save outreach" }).click();
  await expect.poll(() => card.locator("p.notice[role=status]").textContent()).toBe("Saved: daily budget, max turns, budget timezone.");
  const { data: agent } = await stack.sb.admin.from("agents").select("daily_budget_micros,max_turns,budget_timezone").eq("id", "outreach").single();
  expect(agent).toEqual({ daily_budget_micros: 3_250_000, max_turns: 5, budget_timezone: "Europe/Berlin" });
  const { data: audit } = await stack.sb.admin.from("agent_changes").select("actor,changes").eq("agent_id", "outreach");
  expect(audit).toEqual([
    {
      actor: "console:operator",
      changes: {
        daily_budget_micros: { from: 1_000_000, to: 3_250_000 },
        max_turns: { from: 6, to: 5 },
        budget_timezone: { from: "UTC", to: "Europe/Berlin" },
      },
    },
  ]);
  await page.reload();
  expect(await page.locator('section[data-agent-id="outreach"] ul.changes li').first().textContent()).toContain("daily budget $1.00 → $3.25");
});

test("the Pipelines page shows each pipeline's stages, their tasks and the report", async () => {
  const { pipeline_id: id } = await api("/api/pipelines", { topic: "Browser pipeline: durable execution engines" });
  const { page } = await browser.newPage();
  await signIn(page, stack.appUrl);
  await page.getByRole("link", { name: "Pipelines" }).click();
  await page.waitForURL(`${stack.appUrl}/pipelines`);
  const card = page.locator(`article[data-pipeline-id="${id}"]`);
  await reloadUntil(page, async () => (await card.locator("h2 .badge").textContent()) === "completed", 120_000, "the pipeline to complete");
  expect(await card.locator("li[data-stage]").evaluateAll((els) => els.map((e) => e.getAttribute("data-stage")))).toEqual(["research", "analyze", "report"]);
  for (const stage of ["research", "analyze", "report"]) {
    expect(await card.locator(`li[data-stage="${stage}"] .badge`).textContent()).toBe("completed");
    expect(await card.locator(`li[data-stage="${stage}"] a`).getAttribute("href")).toMatch(/^\/tasks\/[0-9a-f-]{36}$/);
  }
  await card.getByText("Report", { exact: true }).click();
  expect((await card.getByTestId("report").textContent())?.length).toBeGreaterThan(10);
  await checkLayout(page, "pipelines");
});

test("edit, then approve on /review: the edited text is what the task publishes", async () => {
  const scenario = "browser-edit-approve";
  stack.double.script(scenario, [{ text: "Nightshift launchs today. Typo inside." }]);
  const { task_id: id } = await api("/api/tasks", { agent: "content", prompt: `${scenarioMarker(scenario)} Launch post` });
  await until(async () => {
    const { data } = await stack.sb.admin.from("approvals").select("id").eq("task_id", id).not("visible_at", "is", null);
    return data?.[0];
  }, "a visible approval");

  const { page } = await browser.newPage();
  await signIn(page, stack.appUrl);
  await page.goto(`${stack.appUrl}/review`);
  const card = page.locator("article[data-approval-id]").filter({ has: page.locator(`a[href="/tasks/${id}"]`) });
  expect(await card.getByTestId("draft").textContent()).toContain("Nightshift launchs today.");
  await checkLayout(page, "review");
  await card.getByText("Edit the draft, then approve").click();
  const box = card.getByLabel("Your version (published as is)");
  expect(await box.inputValue()).toBe("Nightshift launchs today. Typo inside.");
  const edited = "# Nightshift launches today\n\nFixed by the reviewer.";
  await box.fill(edited);
  await card.getByRole("button", { name: "Approve edited draft" }).click();
  await expect.poll(() => card.locator("p.notice[role=status]").textContent()).toMatch(/^Approved with your edits/);

  const done = await until(async () => {
    const t = await taskRow(id);
    return t.status === "completed" ? t : undefined;
  }, "the task to complete");
  expect(done.result).toMatchObject({ text: edited, approval: { decision: "approve", edited: true } });
  await page.goto(`${stack.appUrl}/tasks/${id}`);
  expect(await page.getByTestId("result").locator("h1").textContent()).toBe("Nightshift launches today");
  // Only one model call: the edit is published as it is, not sent back for a revision.
  expect(stack.double.calls({ scenario, kind: "messages" })).toHaveLength(1);
});

test("the dashboard and an unknown task page at both widths: no broken headers, a friendly not-found", async () => {
  const { page } = await browser.newPage();
  await signIn(page, stack.appUrl);
  await checkLayout(page, "dashboard");
  await page.goto(`${stack.appUrl}/tasks/00000000-0000-4000-8000-000000000000`);
  expect(await page.getByRole("heading", { level: 1 }).textContent()).toBe("Not found");
  expect(await page.locator("body").textContent()).not.toMatch(/\{"error"|at .*\.js:\d+/);
});
