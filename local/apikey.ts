// `npm run apikey -- <name>`: creates an API key and prints it once (only its hash is stored).
// Uses SUPABASE_URL + SUPABASE_SECRET_KEY (from the environment or .env.local); without them it targets the
// embedded database of a running `npm run dev`, whose keys it derives from the local JWT secret in .data/.
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { createAdminClient } from "../lib/db/admin";
import { createApiKey } from "../lib/api-keys";
import { loadOrCreateJwtSecret, mintApiKeys } from "./db/jwt";

const root = resolve(import.meta.dirname, "..");
for (const f of [".env.local", ".env"]) if (existsSync(join(root, f))) process.loadEnvFile(join(root, f));

async function main(): Promise<void> {
  const name = process.argv.slice(2).join(" ").trim();
  if (!name) throw new Error("usage: npm run apikey -- <name>");
  let url = process.env.SUPABASE_URL;
  let secretKey = process.env.SUPABASE_SECRET_KEY;
  if (!url || !secretKey) {
    const dataDir = resolve(root, process.env.NIGHTSHIFT_DATA_DIR ?? ".data");
    if (!existsSync(join(dataDir, "postgres"))) {
      throw new Error("set SUPABASE_URL and SUPABASE_SECRET_KEY, or start `npm run dev` first");
    }
    url = `http://127.0.0.1:${process.env.NIGHTSHIFT_REST_PORT ?? 54321}`;
    secretKey = mintApiKeys(await loadOrCreateJwtSecret(dataDir)).secretKey;
  }
  const { id, key } = await createApiKey(createAdminClient({ url, secretKey }), name);
  console.log(`API key '${name}' (id ${id}) — shown once, store it now:\n${key}`);
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
