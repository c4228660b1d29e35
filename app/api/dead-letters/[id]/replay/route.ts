// POST /api/dead-letters/:id/replay — runs the failed task again as a new linked task. Optional JSON body
// `{ prompt?, agent? }`; honours Idempotency-Key (a repeat returns the same task). 202 with the new task; 409 when
// the entry was already replayed or discarded (the answer says which); 404 for an unknown id.
import { methodNotAllowed } from "@/lib/http/methods";
import { replayDeadLetter, ReplayBody } from "@/lib/dead-letters";
import { relayAfterResponse } from "@/inngest/outbox-relay";
import { db } from "@/lib/db/server";
import { requireApiKey } from "@/lib/http/auth";
import { readJsonBody } from "@/lib/http/body";
import { withErrors } from "@/lib/http/errors";
import { publicOrigin } from "@/lib/http/origin";
import { parseOr400 } from "@/lib/http/validation";
import { IdempotencyKey } from "@/lib/tasks/schema";

export const dynamic = "force-dynamic";

export const POST = withErrors(async (req: Request, ctx: { params: Promise<{ id: string }> }) => {
  const { apiKeyId } = await requireApiKey(req);
  const { id } = await ctx.params;
  const rawKey = req.headers.get("idempotency-key");
  const idempotencyKey = rawKey === null ? null : parseOr400(IdempotencyKey, rawKey, "Idempotency-Key header");
  const hasBody = (req.headers.get("content-length") ?? "0") !== "0" || req.headers.has("content-type");
  const body = hasBody ? parseOr400(ReplayBody, await readJsonBody(req)) : {};
  const r = await replayDeadLetter(db(), id, body, { apiKeyId, idempotencyKey, actor: `api:${apiKeyId}` }, { relay: "none" });
  if (r.outcome === "replayed") relayAfterResponse();
  // A pipeline stage replays its pipeline from that stage: the answer points at the pipeline.
  const statusUrl = r.pipeline ? `/api/pipelines/${r.pipeline.id}` : `/api/tasks/${r.taskId}`;
  return Response.json(
    {
      dead_letter_id: id,
      task_id: r.taskId,
      ...(r.pipeline ? { pipeline_id: r.pipeline.id, from_stage: r.pipeline.stage } : {}),
      status: "replayed",
      status_url: statusUrl,
    },
    {
      status: 202,
      headers: { Location: new URL(statusUrl, publicOrigin(req)).toString(), ...(r.outcome === "same" ? { "Idempotent-Replayed": "true" } : {}) },
    },
  );
});

export const { GET, PUT, PATCH, DELETE } = methodNotAllowed(["POST"]);
