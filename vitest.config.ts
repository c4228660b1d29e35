import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

const root = fileURLToPath(new URL(".", import.meta.url));

export default defineConfig({
  resolve: {
    alias: [
      { find: /^@\//, replacement: `${root}/` },
      // `server-only` throws outside a React Server bundle; tests import server modules directly.
      { find: /^server-only$/, replacement: `${root}/tests/support/empty-module.ts` },
    ],
  },
  test: {
    pool: "forks",
    testTimeout: 60_000,
    hookTimeout: 180_000,
    // The morning digest is due every day after 07:00 UTC: left on, its cron would post to the capture servers of
    // whichever test serves every function, depending on the time of day the suite runs. Its own tests turn it on.
    env: { NEXT_TELEMETRY_DISABLED: "1", NIGHTSHIFT_DIGEST_TIME: "off" },
    projects: [
      {
        extends: true,
        test: {
          name: "unit+integration",
          include: ["tests/unit/**/*.test.ts", "tests/integration/**/*.test.ts"],
          globalSetup: ["tests/support/global-setup.ts"],
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: {
          // Production build + `next start` + the engine as processes, and a real Chromium for the console: heavier, so
          // fewer files at once.
          name: "e2e",
          include: ["tests/e2e/**/*.test.ts", "tests/browser/**/*.test.ts"],
          globalSetup: ["tests/support/global-setup.ts", "tests/e2e/build.ts", "tests/browser/setup-chromium.ts"],
          maxWorkers: 2,
          // After the unit and integration files, so the build and the servers do not compete with them.
          sequence: { groupOrder: 1 },
          testTimeout: 120_000,
        },
      },
    ],
  },
});
