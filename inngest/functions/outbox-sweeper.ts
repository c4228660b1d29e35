// Every minute: send whatever the outbox still holds (a process that died between recording and relaying, an event
// API that was down), and prune rows sent more than 7 days ago. Normally the relay after each response has already
// sent everything and this finds nothing.
import { inngest } from "@/inngest/client";
import { relayOutbox } from "@/inngest/outbox-relay";
import { db } from "@/lib/db/server";

const KEEP_SENT_SECONDS = 7 * 24 * 3600;

export const outboxSweeper = inngest.createFunction(
  {
    id: "outbox-sweeper",
    name: "Send events left in the outbox",
    triggers: [{ cron: "TZ=UTC * * * * *" }],
    retries: 2,
    concurrency: { limit: 1 },
  },
  async ({ step }) => {
    const relayed = await step.run("relay", () => relayOutbox({ maxRounds: 50 }));
    const pruned = await step.run("prune", async () => {
      const { data, error } = await db().rpc("outbox_prune", { p_keep_seconds: KEEP_SENT_SECONDS });
      if (error) throw new Error(`outbox_prune failed: ${error.message}`);
      return data ?? 0;
    });
    return { ...relayed, pruned };
  },
);
