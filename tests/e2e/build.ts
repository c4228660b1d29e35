// globalSetup of the e2e project: one production build (`next build`) per test run, into its own folder.
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

export const E2E_DIST_DIR = ".next-e2e";

export default function build(): void {
  const root = fileURLToPath(new URL("../..", import.meta.url));
  const started = Date.now();
  const res = spawnSync(process.execPath, ["node_modules/next/dist/bin/next", "build"], {
    cwd: root,
    env: { ...process.env, NIGHTSHIFT_DIST_DIR: E2E_DIST_DIR, NEXT_TELEMETRY_DISABLED: "1", NIGHTSHIFT_SKIP_BUILD_TYPECHECK: "1" },
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
  });
  if (res.status !== 0) {
    throw new Error(`next build failed (${res.status}):\n${res.stdout}\n${res.stderr}`);
  }
  console.log(`[e2e] next build done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}
