// POST /api/schedules/:id/run — run a schedule now, outside its cron: 202 with the task, like POST /api/tasks
// (optional Idempotency-Key).
import { relayAfterResponse } from "@/inngest/outbox-relay";
import { db } from "@/lib/db/server";
import { methodNotAllowed } from "@/lib/http/methods";
import { requireApiKey } from "@/lib/http/auth";
import { ApiError, withErrors } from "@/lib/http/errors";
import { parseOr400 } from "@/lib/http/validation";
import { ScheduleId } from "@/lib/schedules/schema";
import { runScheduleNow } from "@/lib/schedules/service";
import { IdempotencyKey } from "@/lib/tasks/schema";

export const dynamic = "force-dynamic";

export const POST = withErrors(async (req: Request, ctx: { params: Promise<{ id: string }> }) => {
  const { apiKeyId } = await requireApiKey(req);
  const { id } = await ctx.params;
  const rawKey = req.headers.get("idempotency-key");
  const key = rawKey === null ? null : parseOr400(IdempotencyKey, rawKey, "Idempotency-Key header");
  const task = ScheduleId.safeParse(id).success ? await runScheduleNow(db(), id, apiKeyId, key, { relay: "none" }) : null;
  if (!task) throw new ApiError(404, "not_found", `No schedule with id '${id.slice(0, 64)}'`);
  if (task.outcome === "created") relayAfterResponse();
  return Response.json(
    { task_id: task.taskId, status: task.status, status_url: `/api/tasks/${task.taskId}` },
    { status: 202, headers: task.outcome === "replayed" ? { "Idempotent-Replayed": "true" } : {} },
  );
});

export const { GET, PUT, PATCH, DELETE } = methodNotAllowed(["POST"]);
