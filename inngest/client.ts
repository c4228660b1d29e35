// The Inngest client. Locally `npm run dev` sets INNGEST_DEV to the embedded engine; in production the
// SDK reads INNGEST_SIGNING_KEY / INNGEST_EVENT_KEY (Inngest Cloud, or a self-hosted `inngest start`
// with INNGEST_BASE_URL).
import { Inngest } from "inngest";
import { keepAliveFetch } from "@/lib/net/keepalive-fetch";
import { withStableHeaders } from "./client-headers";

/** The client's options; bench/engine.ts builds its client from these too, so it measures what the app runs. */
export const inngestClientOptions = {
  // On Vercel a serve request may run at most `maxDuration` (300 s in app/api/inngest/route.ts); leave
  // headroom so a checkpointed run hands back to async execution before the platform kills it.
  checkpointing: { maxRuntime: "240s" },
  // One API round trip per checkpointed step: keep-alive node:http(s) instead of the global fetch (lib/net/keepalive-fetch.ts).
  fetch: keepAliveFetch as typeof fetch,
};

/** A client built from these options, as the app builds it (bench/engine.ts builds its own with a different id). */
export function createInngestClient<O extends ConstructorParameters<typeof Inngest>[0]>(options: O) {
  return withStableHeaders(new Inngest(options));
}

export const inngest = createInngestClient({ id: "nightshift", ...inngestClientOptions });
