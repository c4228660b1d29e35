import "server-only";
// The server's Supabase client: the secret (service_role) key, which bypasses RLS. Never import it from code that
// reaches the browser — `server-only` makes such an import fail the build.
import { createClient, type SupabaseClient, type SupabaseClientOptions } from "@supabase/supabase-js";
import WebSocket from "ws";
import { keepAliveFetch } from "@/lib/net/keepalive-fetch";
import type { Database } from "./database.types";
import { registerDirectRpc } from "./direct-rpc";
import { watchedFetch } from "./reachability";

export type AdminClient = SupabaseClient<Database>;

// `ws` satisfies realtime's WebSocket contract at run time; its constructor's declared parameter types are wider
// than realtime-js's structural type, hence the cast.
type WebSocketTransport = NonNullable<NonNullable<SupabaseClientOptions<"public">["realtime"]>["transport"]>;
export const nodeWebSocket = WebSocket as unknown as WebSocketTransport;

export function createAdminClient(opts: {
  url: string;
  secretKey: string;
  /** The hot path's RPC without supabase-js's request machinery (lib/db/direct-rpc.ts); default on. */
  directRpc?: boolean;
}): AdminClient {
  const client = createClient<Database>(opts.url, opts.secretKey, {
    // A server has no user session to keep or refresh.
    auth: { persistSession: false, autoRefreshToken: false },
    // supabase-js 2.119 on Node 20 has no global WebSocket and throws in createClient without one.
    realtime: { transport: nodeWebSocket },
    // Every PostgREST call over a kept-alive node:http socket instead of the global fetch (undici, and Next's patch
    // of it inside route handlers): ~0.5 ms less CPU per call, which is most of a POST /api/tasks (docs/benchmarks.md).
    // Watched: a call that cannot reach Postgres makes the request answer 503, not 500 (lib/db/reachability.ts).
    global: { fetch: watchedFetch(keepAliveFetch as typeof fetch) },
    // Reads are repeated by watchedFetch instead: supabase-js's own retries wait 1 + 2 + 4 s even while a client
    // waits for an answer that can only be a 503 (lib/db/reachability.ts says when a read is repeated).
    db: { retry: false },
    // A server client never has a user session: with the key as its token, supabase-js stops asking auth-js for a
    // session (behind auth-js's lock) before every request — ~0.08 ms of CPU per call (docs/benchmarks.md, session 7).
    // The same Authorization header either way; `client.auth` is unavailable (nothing server-side uses it).
    accessToken: async () => opts.secretKey,
  });
  if (opts.directRpc !== false) registerDirectRpc(client, opts.url, opts.secretKey);
  return client;
}
