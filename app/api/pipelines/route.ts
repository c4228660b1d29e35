// POST /api/pipelines queues a research -> analyze -> report pipeline (202) — it never runs an agent.
import { relayAfterResponse } from "@/inngest/outbox-relay";
import { methodNotAllowed } from "@/lib/http/methods";
import { db } from "@/lib/db/server";
import { requireApiKey } from "@/lib/http/auth";
import { readJsonBody } from "@/lib/http/body";
import { withErrors } from "@/lib/http/errors";
import { publicOrigin } from "@/lib/http/origin";
import { parseOr400 } from "@/lib/http/validation";
import { CreatePipelineBody, submitPipeline } from "@/lib/pipelines";
import { IdempotencyKey } from "@/lib/tasks/schema";

export const dynamic = "force-dynamic";

export const POST = withErrors(async (req: Request) => {
  const { apiKeyId } = await requireApiKey(req);
  const rawKey = req.headers.get("idempotency-key");
  const idempotencyKey = rawKey === null ? null : parseOr400(IdempotencyKey, rawKey, "Idempotency-Key header");
  const body = parseOr400(CreatePipelineBody, await readJsonBody(req));
  const p = await submitPipeline(db(), body, apiKeyId, idempotencyKey, { relay: "none" });
  if (p.outcome === "created") relayAfterResponse();
  const statusUrl = `/api/pipelines/${p.pipelineId}`;
  return Response.json(
    { pipeline_id: p.pipelineId, status: p.status, status_url: statusUrl },
    {
      status: 202,
      headers: {
        Location: new URL(statusUrl, publicOrigin(req)).toString(),
        ...(p.outcome === "replayed" ? { "Idempotent-Replayed": "true" } : {}),
      },
    },
  );
});

export const { GET, PUT, PATCH, DELETE } = methodNotAllowed(["POST"]);
