// `npm run apikey -- <name>`: creates an API key and prints it once (only its hash is stored).
// Uses SUPABASE_URL + SUPABASE_SECRET_KEY (from the environment or .env.local); without them it targets the
// embedded database of a running `npm run dev` — at the URL that run recorded in .data/local-supabase.json (so a
// custom NIGHTSHIFT_REST_PORT needs nothing more), with keys derived from the local JWT secret in .data/.
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { createAdminClient } from "../lib/db/admin";
import { createApiKey } from "../lib/api-keys";
import { loadOrCreateJwtSecret, mintApiKeys } from "./db/jwt";

const root = resolve(import.meta.dirname, "..");
for (const f of [".env.local", ".env"]) if (existsSync(join(root, f))) process.loadEnvFile(join(root, f));

/** The local Supabase URL: NIGHTSHIFT_REST_PORT if set, else what the running `npm run dev` recorded, else the default. */
export function localSupabaseUrl(dataDir: string, env: Record<string, string | undefined> = process.env): string {
  if (env.NIGHTSHIFT_REST_PORT) return `http://127.0.0.1:${env.NIGHTSHIFT_REST_PORT}`;
  try {
    const saved = JSON.parse(readFileSync(join(dataDir, "local-supabase.json"), "utf8")) as { url?: unknown };
    if (typeof saved.url === "string" && /^https?:\/\//.test(saved.url)) return saved.url;
  } catch {
    /* not recorded: the default port */
  }
  return "http://127.0.0.1:54321";
}

/** What to tell a person when the database cannot be reached (instead of a bare `fetch failed`). */
export function unreachableMessage(url: string, local: boolean, cause: unknown): string {
  const why = cause instanceof Error ? ((cause.cause as Error | undefined)?.message ?? cause.message) : String(cause);
  return local
    ? `Could not reach the local Supabase API at ${url} (${why}).\n` +
        "Is `npm run dev` running? If it runs with a custom NIGHTSHIFT_REST_PORT or NIGHTSHIFT_DATA_DIR, run this " +
        "command with the same values, e.g.: NIGHTSHIFT_REST_PORT=<port> npm run apikey -- <name>"
    : `Could not reach SUPABASE_URL=${url} (${why}). Check the URL and that the project is up.`;
}

async function main(): Promise<void> {
  const name = process.argv.slice(2).join(" ").trim();
  if (!name) throw new Error("usage: npm run apikey -- <name>");
  let url = process.env.SUPABASE_URL;
  let secretKey = process.env.SUPABASE_SECRET_KEY;
  const local = !url || !secretKey;
  if (local) {
    const dataDir = resolve(root, process.env.NIGHTSHIFT_DATA_DIR ?? ".data");
    if (!existsSync(join(dataDir, "postgres"))) {
      throw new Error(`set SUPABASE_URL and SUPABASE_SECRET_KEY, or start \`npm run dev\` first (no local data in ${dataDir})`);
    }
    url = localSupabaseUrl(dataDir);
    secretKey = mintApiKeys(await loadOrCreateJwtSecret(dataDir)).secretKey;
  }
  let created: { id: string; key: string };
  try {
    created = await createApiKey(createAdminClient({ url: url!, secretKey: secretKey! }), name);
  } catch (e) {
    if (e instanceof Error && /fetch failed|ECONNREFUSED|ENOTFOUND|EAI_AGAIN/i.test(`${e.message} ${(e.cause as Error | undefined)?.message ?? ""}`)) {
      throw new Error(unreachableMessage(url!, local, e));
    }
    throw e;
  }
  console.log(`API key '${name}' (id ${created.id}) — shown once, store it now:\n${created.key}`);
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(import.meta.filename)) {
  main().catch((e: unknown) => {
    console.error(e instanceof Error ? e.message : e);
    process.exit(1);
  });
}
