// POST /api/dead-letters/:id/discard — closes a dead letter without running it again. Optional JSON body
// `{ note? }`. 200; 409 when it was already replayed or discarded (the answer says which); 404 for an unknown id.
import { methodNotAllowed } from "@/lib/http/methods";
import { discardDeadLetter, DiscardBody } from "@/lib/dead-letters";
import { db } from "@/lib/db/server";
import { requireApiKey } from "@/lib/http/auth";
import { readJsonBody } from "@/lib/http/body";
import { withErrors } from "@/lib/http/errors";
import { parseOr400 } from "@/lib/http/validation";

export const dynamic = "force-dynamic";

export const POST = withErrors(async (req: Request, ctx: { params: Promise<{ id: string }> }) => {
  const { apiKeyId } = await requireApiKey(req);
  const { id } = await ctx.params;
  const hasBody = (req.headers.get("content-length") ?? "0") !== "0" || req.headers.has("content-type");
  const body = hasBody ? parseOr400(DiscardBody, await readJsonBody(req)) : {};
  await discardDeadLetter(db(), id, body.note ?? null, `api:${apiKeyId}`);
  return Response.json({ dead_letter_id: id, status: "discarded", note: body.note ?? null });
});

export const { GET, PUT, PATCH, DELETE } = methodNotAllowed(["POST"]);
