// globalSetup of the e2e project: one production build (`next build`) per test run, into its own folder.
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { BUILD_SENTINELS } from "../browser/console-stack";
import { E2E_DIST_DIR } from "../support/dist-dir";


export default function build(): void {
  const root = fileURLToPath(new URL("../..", import.meta.url));
  const started = Date.now();
  const res = spawnSync(process.execPath, ["node_modules/next/dist/bin/next", "build"], {
    cwd: root,
    // Built with sentinel secrets in the environment: tests/browser/secrets.test.ts checks none reached the client JS.
    env: { ...process.env, ...BUILD_SENTINELS, NIGHTSHIFT_DIST_DIR: E2E_DIST_DIR, NEXT_TELEMETRY_DISABLED: "1", NIGHTSHIFT_SKIP_BUILD_TYPECHECK: "1" },
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
  });
  if (res.status !== 0) {
    throw new Error(`next build failed (${res.status}):\n${res.stdout}\n${res.stderr}`);
  }
  console.log(`[e2e] next build done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}
