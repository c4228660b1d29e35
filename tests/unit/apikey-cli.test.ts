// `npm run apikey` against a local stack it cannot reach says what to do (not a bare `fetch failed`), and finds a
// running `npm run dev` on a custom port through what dev recorded in the data folder.
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, expect, test } from "vitest";
import { localSupabaseUrl } from "../../local/apikey";
import { freePort } from "../../local/ports";

const dirs: string[] = [];
afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

async function dataDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), "ns-apikey-"));
  dirs.push(d);
  await mkdir(join(d, "postgres"));
  return d;
}

test("the local URL: NIGHTSHIFT_REST_PORT, else the one `npm run dev` recorded, else the default", async () => {
  const d = await dataDir();
  expect(localSupabaseUrl(d, {})).toBe("http://127.0.0.1:54321");
  await writeFile(join(d, "local-supabase.json"), JSON.stringify({ url: "http://127.0.0.1:61234" }));
  expect(localSupabaseUrl(d, {})).toBe("http://127.0.0.1:61234");
  expect(localSupabaseUrl(d, { NIGHTSHIFT_REST_PORT: "5555" })).toBe("http://127.0.0.1:5555");
});

test("an unreachable local stack gives a clear error naming the URL and the custom-port fix", async () => {
  const d = await dataDir();
  const port = await freePort(); // nothing listens there
  const env: Record<string, string | undefined> = { ...process.env, NIGHTSHIFT_DATA_DIR: d, NIGHTSHIFT_REST_PORT: String(port) };
  delete env.SUPABASE_URL;
  delete env.SUPABASE_SECRET_KEY;
  const run = promisify(execFile)(process.execPath, ["--import", "tsx", "--conditions=react-server", "local/apikey.ts", "ci"], { env: env as NodeJS.ProcessEnv, cwd: process.cwd() });
  const err = (await run.then(() => null, (e: { code: number; stderr: string }) => e))!;
  expect(err).not.toBeNull();
  expect(err.code).toBe(1);
  expect(err.stderr).toContain(`Could not reach the local Supabase API at http://127.0.0.1:${port}`);
  expect(err.stderr).toContain("NIGHTSHIFT_REST_PORT");
  expect(err.stderr).not.toMatch(/^\s*at /m); // no stack trace
}, 60_000);
