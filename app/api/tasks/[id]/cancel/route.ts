// POST /api/tasks/:id/cancel — stops a task that has not ended: 200 with its new status, 409 when it had already
// ended (the answer says how), 404 for an unknown id. Optional JSON body `{ reason?: string }`.
import { methodNotAllowed } from "@/lib/http/methods";
import { z } from "zod";
import { relayAfterResponse } from "@/inngest/outbox-relay";
import { db } from "@/lib/db/server";
import { requireApiKey } from "@/lib/http/auth";
import { readJsonBody } from "@/lib/http/body";
import { ApiError, withErrors } from "@/lib/http/errors";
import { parseOr400 } from "@/lib/http/validation";
import { cancelTask } from "@/lib/tasks/cancel";
import { TaskId } from "@/lib/tasks/schema";

export const dynamic = "force-dynamic";

const CancelBody = z.strictObject({ reason: z.string().trim().min(1).max(500).optional() });

export const POST = withErrors(async (req: Request, ctx: { params: Promise<{ id: string }> }) => {
  const { apiKeyId } = await requireApiKey(req);
  const { id } = await ctx.params;
  const hasBody = (req.headers.get("content-length") ?? "0") !== "0" || req.headers.has("content-type");
  const body = hasBody ? parseOr400(CancelBody, await readJsonBody(req)) : {};
  if (!TaskId.safeParse(id).success) throw new ApiError(404, "not_found", `No task with id '${id.slice(0, 64)}'`);
  const r = await cancelTask(db(), id, body.reason ? `cancelled: ${body.reason}` : "cancelled", `api:${apiKeyId}`, { relay: "none" });
  if (r.outcome === "not_found") throw new ApiError(404, "not_found", `No task with id '${id}'`);
  if (r.outcome === "already_finished") {
    throw new ApiError(409, "already_finished", `The task had already ended (${r.status})`, { status: r.status });
  }
  relayAfterResponse();
  return Response.json({ task_id: id, status: r.status });
});

export const { GET, PUT, PATCH, DELETE } = methodNotAllowed(["POST"]);
