// The Inngest client. Locally `npm run dev` sets INNGEST_DEV to the embedded engine; in production the
// SDK reads INNGEST_SIGNING_KEY / INNGEST_EVENT_KEY (Inngest Cloud, or a self-hosted `inngest start`
// with INNGEST_BASE_URL).
import { Inngest } from "inngest";
import { keepAliveFetch } from "@/lib/net/keepalive-fetch";

/** The client's options; bench/engine.ts builds its client from these too, so it measures what the app runs. */
export const inngestClientOptions = {
  // On Vercel a serve request may run at most `maxDuration` (300 s in app/api/inngest/route.ts); leave
  // headroom so a checkpointed run hands back to async execution before the platform kills it.
  checkpointing: { maxRuntime: "240s" },
  // One API round trip per checkpointed step: keep-alive node:http(s) instead of the global fetch (lib/net/keepalive-fetch.ts).
  fetch: keepAliveFetch as typeof fetch,
};

export const inngest = new Inngest({ id: "nightshift", ...inngestClientOptions });
