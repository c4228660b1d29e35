// The Inngest client. Locally `npm run dev` sets INNGEST_DEV to the embedded engine; in production the
// SDK reads INNGEST_SIGNING_KEY / INNGEST_EVENT_KEY (Inngest Cloud, or a self-hosted `inngest start`
// with INNGEST_BASE_URL).
import { Inngest } from "inngest";

export const inngest = new Inngest({
  id: "nightshift",
  // On Vercel a serve request may run at most `maxDuration` (300 s in app/api/inngest/route.ts); leave
  // headroom so a checkpointed run hands back to async execution before the platform kills it.
  checkpointing: { maxRuntime: "240s" },
});
