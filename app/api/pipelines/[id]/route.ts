// GET /api/pipelines/:id — the pipeline's status, each stage (status, task, output summary) and, once done, the report.
import { methodNotAllowed } from "@/lib/http/methods";
import { db } from "@/lib/db/server";
import { requireApiKey } from "@/lib/http/auth";
import { ApiError, withErrors } from "@/lib/http/errors";
import { getPipeline, PipelineId } from "@/lib/pipelines";

export const dynamic = "force-dynamic";

export const GET = withErrors(async (req: Request, ctx: { params: Promise<{ id: string }> }) => {
  await requireApiKey(req);
  const { id } = await ctx.params;
  // A malformed id cannot name a pipeline: same 404 as an unknown one.
  const pipeline = PipelineId.safeParse(id).success ? await getPipeline(db(), id) : null;
  if (!pipeline) throw new ApiError(404, "not_found", `No pipeline with id '${id.slice(0, 64)}'`);
  return Response.json(pipeline);
});

export const { POST, PUT, PATCH, DELETE } = methodNotAllowed(["GET"]);
