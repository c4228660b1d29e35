// The morning digest (lib/digest): a cron tick every 5 minutes sends today's digest once the local digest time has
// passed — so a deploy or an outage at 07:00 delays it instead of losing it. Exactly once per day: the digest is a
// notification keyed `digest:<date>` (unique in Postgres), so retries, overlapping ticks and two instances send it once.
import { inngest } from "@/inngest/client";
import { db } from "@/lib/db/server";
import { digestConfig, sendDigestIfDue } from "@/lib/digest";
import { env } from "@/lib/env";
import { loadNotifyConfig } from "@/lib/notifications";

export const morningDigest = inngest.createFunction(
  { id: "morning-digest", name: "Send the morning digest", triggers: [{ cron: "*/5 * * * *" }], retries: 3 },
  async ({ step }) => step.run("send-if-due", () => sendDigestIfDue(db(), digestConfig(env()), loadNotifyConfig().publicUrl, new Date())),
);
