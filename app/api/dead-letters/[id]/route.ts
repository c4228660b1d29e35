// GET /api/dead-letters/:id — one dead letter: the failure in words, the raw error chain, the failed step, its cost,
// the last steps of its timeline, and whether it was replayed (replayed_by) or discarded.
import { methodNotAllowed } from "@/lib/http/methods";
import { getDeadLetter } from "@/lib/dead-letters";
import { db } from "@/lib/db/server";
import { requireApiKey } from "@/lib/http/auth";
import { ApiError, withErrors } from "@/lib/http/errors";

export const dynamic = "force-dynamic";

export const GET = withErrors(async (req: Request, ctx: { params: Promise<{ id: string }> }) => {
  await requireApiKey(req);
  const { id } = await ctx.params;
  const dl = await getDeadLetter(db(), id);
  if (!dl) throw new ApiError(404, "not_found", `No dead letter with id '${id.slice(0, 64)}'`);
  return Response.json(dl);
});

export const { POST, PUT, PATCH, DELETE } = methodNotAllowed(["GET"]);
