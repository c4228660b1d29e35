// POST /api/webhooks/:source — a signed delivery (Standard Webhooks) from another system starts a task. The
// signature is the authentication (no API key): see lib/webhooks/inbound.ts for every check and its status.
import { methodNotAllowed } from "@/lib/http/methods";
import { relayAfterResponse } from "@/inngest/outbox-relay";
import { db } from "@/lib/db/server";
import { withErrors } from "@/lib/http/errors";
import { noteRefusal, receiveWebhook, WebhookRefusal } from "@/lib/webhooks/inbound";

export const dynamic = "force-dynamic";

export const POST = withErrors(async (req: Request, ctx: { params: Promise<{ source: string }> }) => {
  const { source } = await ctx.params;
  try {
    const task = await receiveWebhook(db(), source, req);
    // The task's start event is in the outbox: send it once the sender has its answer (docs/outbox.md).
    if (task.outcome === "created") relayAfterResponse();
    const statusUrl = `/api/tasks/${task.taskId}`;
    return Response.json(
      { task_id: task.taskId, status: task.status, status_url: statusUrl, duplicate: task.outcome === "replayed" },
      { status: 202, headers: task.outcome === "replayed" ? { "Idempotent-Replayed": "true" } : {} },
    );
  } catch (err) {
    if (err instanceof WebhookRefusal) await noteRefusal(db(), err);
    throw err;
  }
});

export const { GET, PUT, PATCH, DELETE } = methodNotAllowed(["POST"]);
