// GET /api/webhook-sources/:name — one source with its refusal counters and recent changes.
// PATCH /api/webhook-sources/:name — change any field but the name (`{ "enabled": false }` switches it off: its
// deliveries then get 404). The change and its audit row (who, when, each field from → to) are written by one
// Postgres function. 200 { source, change_id } (null: nothing differed); 400 names the field; 404 unknown source.
import { methodNotAllowed } from "@/lib/http/methods";
import { db } from "@/lib/db/server";
import { requireApiKey } from "@/lib/http/auth";
import { readJsonBody } from "@/lib/http/body";
import { ApiError, withErrors } from "@/lib/http/errors";
import { parseOr400 } from "@/lib/http/validation";
import { SourceName, UpdateSourceBody, getWebhookSource, saveWebhookSource } from "@/lib/webhooks/sources";

export const dynamic = "force-dynamic";

type Ctx = { params: Promise<{ name: string }> };
const notFound = (name: string) => new ApiError(404, "not_found", `No webhook source '${name.slice(0, 64)}'`);

async function nameOf(ctx: Ctx): Promise<string> {
  const { name } = await ctx.params;
  if (!SourceName.safeParse(name).success) throw notFound(name);
  return name;
}

export const GET = withErrors(async (req: Request, ctx: Ctx) => {
  await requireApiKey(req);
  const name = await nameOf(ctx);
  const source = await getWebhookSource(db(), name);
  if (!source) throw notFound(name);
  return Response.json(source);
});

export const PATCH = withErrors(async (req: Request, ctx: Ctx) => {
  const { apiKeyId } = await requireApiKey(req);
  const name = await nameOf(ctx);
  const patch = parseOr400(UpdateSourceBody, await readJsonBody(req));
  const r = await saveWebhookSource(db(), name, patch, `api:${apiKeyId}`, false);
  return Response.json(r);
});

export const { POST, PUT, DELETE } = methodNotAllowed(["GET", "PATCH"]);
