// The whole system for browser tests: startAppStack (private Supabase, offline Claude, local engine, `next start`)
// with the console configured, plus helpers to sign a page in.
import { expect } from "vitest";
import type { Page } from "playwright-core";
import { startAppStack, type AppStack } from "../support/app-stack";
import { E2E_DIST_DIR } from "../support/dist-dir";

export const OPERATOR_PASSWORD = "night-owl operator password";
export const SESSION_SECRET = "browser-tests-session-secret-7f3c9a1e5b2d4c6e8a0f";

/** Values the production build is made with, so the bundle test can look for them in the client JS. */
export const BUILD_SENTINELS = {
  SUPABASE_SECRET_KEY: "sentinel-supabase-secret-key-do-not-ship-4b1d",
  NIGHTSHIFT_OPERATOR_PASSWORD: "sentinel-operator-password-do-not-ship-9e2a",
  NIGHTSHIFT_SESSION_SECRET: "sentinel-session-secret-do-not-ship-0123456789abcdef",
};

/** The production build the app runs from (built by tests/e2e/build.ts). */
export function browserDistDir(): string {
  return E2E_DIST_DIR;
}

export async function startConsoleStack(env: Record<string, string> = {}): Promise<AppStack> {
  return startAppStack({
    env: {
      NIGHTSHIFT_OPERATOR_PASSWORD: OPERATOR_PASSWORD,
      NIGHTSHIFT_SESSION_SECRET: SESSION_SECRET,
      NIGHTSHIFT_DIST_DIR: browserDistDir(),
      ...env,
    },
  });
}

/** Signs the page in through the real form and waits for the dashboard. */
export async function signIn(page: Page, appUrl: string, password = OPERATOR_PASSWORD): Promise<void> {
  await page.goto(`${appUrl}/login`);
  await page.getByLabel("Operator password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(`${appUrl}/`);
  await expect(page.getByRole("heading", { name: "Tasks", level: 1 }).isVisible()).resolves.toBe(true);
}

/** Polls a page condition by reloading until it holds (the server renders fresh data on every request). */
export async function reloadUntil(page: Page, check: () => Promise<boolean>, timeoutMs = 60_000, what = "the page to update"): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 500));
    await page.reload();
  }
}
