// Every minute: send whatever the outbox still holds (a process that died between recording and relaying, an event
// API that was down), then apply the retention windows to bookkeeping that has done its job — sent outbox rows,
// finished webhook deliveries' attempt logs, old notifications, expired cached pages (lib/retention.ts,
// docs/retention.md), in bounded batches. Normally the relay after each response has already sent everything and
// this finds nothing.
import { inngest } from "@/inngest/client";
import { relayOutbox } from "@/inngest/outbox-relay";
import { webCacheTtlMs } from "@/lib/agents/tools/page-cache";
import { db } from "@/lib/db/server";
import { env } from "@/lib/env";
import { pruneBookkeeping, retentionWindows } from "@/lib/retention";

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
    const pruned = await step.run("prune", () => pruneBookkeeping(db(), retentionWindows(env(), webCacheTtlMs())));
    return { ...relayed, pruned };
  },
);
