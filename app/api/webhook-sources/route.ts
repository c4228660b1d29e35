// GET /api/webhook-sources — every inbound webhook source with its refusal counters (secrets are never returned:
// a source names the environment variables that hold them). POST creates one (201); the creation is audited.
import { methodNotAllowed } from "@/lib/http/methods";
import { db } from "@/lib/db/server";
import { requireApiKey } from "@/lib/http/auth";
import { readJsonBody } from "@/lib/http/body";
import { withErrors } from "@/lib/http/errors";
import { parseOr400 } from "@/lib/http/validation";
import { CreateSourceBody, listWebhookSources, saveWebhookSource } from "@/lib/webhooks/sources";

export const dynamic = "force-dynamic";

export const GET = withErrors(async (req: Request) => {
  await requireApiKey(req);
  return Response.json(await listWebhookSources(db()));
});

export const POST = withErrors(async (req: Request) => {
  const { apiKeyId } = await requireApiKey(req);
  const { name, ...body } = parseOr400(CreateSourceBody, await readJsonBody(req));
  const r = await saveWebhookSource(db(), name, body, `api:${apiKeyId}`, true);
  return Response.json(r.source, { status: 201, headers: { Location: `/api/webhook-sources/${name}` } });
});

export const { PUT, PATCH, DELETE } = methodNotAllowed(["GET", "POST"]);
