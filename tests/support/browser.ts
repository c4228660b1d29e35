// A real Chromium for browser tests: the one inside npm @sparticuz/chromium (unpacked to /tmp on first use),
// driven by playwright-core. Launched with plain flags — the package's own `chromium.args` include
// --single-process, which closed pages here. Playwright gives each launch a fresh temporary profile
// (user-data-dir) and deletes it on close; each test gets its own context (cookies, storage).
import chromium from "@sparticuz/chromium";
import { chromium as playwright, type Browser, type BrowserContext, type Page } from "playwright-core";

export const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-dev-shm-usage",
  "--no-zygote",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

/** Unpacks the browser once (globalSetup calls this so parallel workers never unpack at the same time). */
export async function chromiumPath(): Promise<string> {
  return process.env.NIGHTSHIFT_CHROMIUM_PATH || (await chromium.executablePath());
}

export async function launchBrowser(): Promise<Browser> {
  return playwright.launch({ executablePath: await chromiumPath(), args: CHROMIUM_ARGS, headless: true });
}

export interface BrowserHarness {
  browser: Browser;
  /** A fresh context (no cookies) and page, closed by `closeAll` or `close`. */
  newPage(opts?: { width?: number; height?: number; baseURL?: string }): Promise<{ context: BrowserContext; page: Page }>;
  /** Closes the contexts opened since the last call (use in afterEach). */
  closeContexts(): Promise<void>;
  close(): Promise<void>;
}

export async function startBrowser(): Promise<BrowserHarness> {
  const browser = await launchBrowser();
  let open: BrowserContext[] = [];
  const harness: BrowserHarness = {
    browser,
    async newPage(opts = {}) {
      const context = await browser.newContext({
        viewport: { width: opts.width ?? 1280, height: opts.height ?? 900 },
        baseURL: opts.baseURL,
      });
      context.setDefaultTimeout(20_000);
      open.push(context);
      return { context, page: await context.newPage() };
    },
    async closeContexts() {
      const closing = open;
      open = [];
      await Promise.all(closing.map((c) => c.close().catch(() => {})));
    },
    async close() {
      await harness.closeContexts();
      await browser.close().catch(() => {});
    },
  };
  return harness;
}
