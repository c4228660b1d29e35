// A private Supabase per test file: a database cloned from the migrated template, a real PostgREST on it with
// freshly minted keys, and the app's own admin client. Nothing is shared, so test files run in parallel.
import { createClient, type SupabaseClient } from "@supabase/supabase-js";
import { generateJwtSecret, mintApiKeys } from "../../local/db/jwt";
import { asAuthenticator, startPostgrest } from "../../local/db/postgrest";
import { createAdminClient, nodeWebSocket } from "../../lib/db/admin";
import type { Database } from "../../lib/db/database.types";
import { createTestDatabase } from "./postgres";

export interface TestSupabase {
  supabaseUrl: string;
  anonKey: string;
  secretKey: string;
  /** Superuser URL of this test's database, for assertions the API cannot make. */
  databaseUrl: string;
  /** The app's server client (secret key). */
  admin: SupabaseClient<Database>;
  /** A supabase-js client for any key (e.g. the anon key, as a browser would hold it). */
  client(key: string): SupabaseClient<Database>;
  /** Stops PostgREST and drops the database. */
  stop(): Promise<void>;
}

export async function createTestSupabase(opts: { log?: (line: string) => void } = {}): Promise<TestSupabase> {
  const db = await createTestDatabase();
  try {
    const jwtSecret = generateJwtSecret();
    const rest = await startPostgrest({ databaseUrl: asAuthenticator(db.url), jwtSecret, log: opts.log });
    const keys = mintApiKeys(jwtSecret);
    return {
      supabaseUrl: rest.url,
      ...keys,
      databaseUrl: db.url,
      admin: createAdminClient({ url: rest.url, secretKey: keys.secretKey }),
      client: (key) =>
        createClient<Database>(rest.url, key, {
          auth: { persistSession: false, autoRefreshToken: false },
          realtime: { transport: nodeWebSocket },
        }),
      async stop() {
        await rest.stop();
        await db.drop();
      },
    };
  } catch (e) {
    await db.drop().catch(() => {});
    throw e;
  }
}
