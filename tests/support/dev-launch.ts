// Shared by the tests that run the real `npm run dev` launcher (local/dev.ts) in a child process: the files next dev
// rewrites for its distDir (put back afterwards), and the clean-up of a launcher's data directory and build folder.
import { existsSync, readFileSync } from "node:fs";
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { stopLeftoverServer } from "../../local/data-stack";
import { reapRecorded } from "../../local/dev-processes";

export const repoRoot = fileURLToPath(new URL("../..", import.meta.url));

/** Snapshots the files next dev rewrites for its distDir (tsconfig.json, next-env.d.ts); the result puts them back. */
export function keepNextDevFiles(): () => Promise<void> {
  const kept = ["tsconfig.json", "next-env.d.ts"].map((f) => {
    const path = join(repoRoot, f);
    return { path, text: existsSync(path) ? readFileSync(path, "utf8") : null };
  });
  return async () => {
    for (const k of kept) if (k.text !== null) await writeFile(k.path, k.text);
  };
}

/** Ends whatever a launcher recorded in `dataDir` and its Postgres, then removes the data directory and `distDir`. */
export async function cleanUpDevRun(dataDir: string, distDir: string): Promise<void> {
  if (dataDir) {
    await reapRecorded(dataDir).catch(() => {});
    await stopLeftoverServer(join(dataDir, "postgres"), () => {}).catch(() => {});
    await rm(dataDir, { recursive: true, force: true });
  }
  await rm(join(repoRoot, distDir), { recursive: true, force: true });
}
