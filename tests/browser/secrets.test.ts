// No secret reaches the browser: the client bundle (`<dist>/static`) and every page the console serves are
// searched for the Supabase secret key, the operator password and the session secret — both the sentinel values
// the build was made with (tests/e2e/build.ts) and the values the running app was given.
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, expect, test } from "vitest";
import type { AppStack } from "../support/app-stack";
import { BUILD_SENTINELS, OPERATOR_PASSWORD, SESSION_SECRET, browserDistDir, startConsoleStack } from "./console-stack";
import { startBrowser, type BrowserHarness } from "../support/browser";
import { signIn } from "./console-stack";

const root = fileURLToPath(new URL("../..", import.meta.url));
let stack: AppStack;
let browser: BrowserHarness;

beforeAll(async () => {
  [stack, browser] = await Promise.all([startConsoleStack(), startBrowser()]);
});
afterAll(async () => {
  await browser?.close();
  await stack?.stop();
});

async function files(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await files(p)));
    else out.push(p);
  }
  return out;
}

function secrets(): Record<string, string> {
  return {
    ...BUILD_SENTINELS,
    "runtime SUPABASE_SECRET_KEY": stack.sb.secretKey,
    "runtime NIGHTSHIFT_OPERATOR_PASSWORD": OPERATOR_PASSWORD,
    "runtime NIGHTSHIFT_SESSION_SECRET": SESSION_SECRET,
  };
}

test("the client bundle contains no secret", async () => {
  const staticDir = join(root, browserDistDir(), "static");
  const all = await files(staticDir);
  const js = all.filter((f) => f.endsWith(".js"));
  expect(js.length).toBeGreaterThan(5);
  for (const file of all) {
    const text = await readFile(file, "utf8");
    for (const [name, value] of Object.entries(secrets())) {
      expect(text.includes(value), `${name} found in ${file}`).toBe(false);
    }
  }
});

test("no page, RSC payload or script the signed-in console loads contains a secret", async () => {
  const { page } = await browser.newPage();
  const bodies: { url: string; text: string }[] = [];
  page.on("response", async (r) => {
    if (!r.url().startsWith(stack.appUrl)) return;
    try {
      bodies.push({ url: r.url(), text: await r.text() });
    } catch {
      /* redirects have no body */
    }
  });
  await signIn(page, stack.appUrl);
  for (const path of ["/", "/review", "/login"]) await page.goto(`${stack.appUrl}${path}`);
  await page.getByRole("link", { name: "Review" }).click();
  await page.waitForURL(/\/review$/);
  await page.waitForLoadState("networkidle");
  expect(bodies.some((b) => b.url.endsWith(".js"))).toBe(true);
  for (const b of bodies) {
    for (const [name, value] of Object.entries(secrets())) expect(b.text.includes(value), `${name} in ${b.url}`).toBe(false);
  }
});
