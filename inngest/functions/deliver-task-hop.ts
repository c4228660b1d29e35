// Delivers a completed task's result to its next hop, a peer Nightshift deployment (lib/webhooks/peers.ts), as a
// signed Standard Webhooks request that starts a task there. Triggered by `task/run.finished` of a completed task;
// the same durable, recorded delivery loop as callbacks (inngest/deliver-webhook.ts).
import { deliverWithRetries } from "@/inngest/deliver-webhook";
import { inngest } from "@/inngest/client";
import { taskRunFinished } from "@/inngest/events";
import { db } from "@/lib/db/server";
import { openTaskHop } from "@/lib/webhooks/peers";

export const deliverTaskHop = inngest.createFunction(
  {
    id: "deliver-task-hop",
    name: "Hand a completed task's result to its next hop (peer deployment)",
    triggers: [{ event: taskRunFinished, if: "event.data.status == 'completed'" }],
    retries: 4,
  },
  async ({ event, step }) => {
    const taskId = event.data.task_id;
    const hop = await step.run("open", () => openTaskHop(db(), taskId));
    if (!hop) return { task_id: taskId, skipped: "no next hop (or its peer is disabled)" };
    return { task_id: taskId, peer: hop.peer, ...(await deliverWithRetries(step, hop.id)) };
  },
);
