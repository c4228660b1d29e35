// GET /api/tasks/:id/artifacts — the artifacts a task's agent saved (name, content type, size, SHA-256), oldest
// first, without their content: `{ task_id, artifacts: [{ artifact_id, ..., url }] }`. 404 unknown task.
import { methodNotAllowed } from "@/lib/http/methods";
import { listArtifacts } from "@/lib/artifacts";
import { db } from "@/lib/db/server";
import { requireApiKey } from "@/lib/http/auth";
import { ApiError, withErrors } from "@/lib/http/errors";
import { TaskId } from "@/lib/tasks/schema";

export const dynamic = "force-dynamic";

export const GET = withErrors(async (req: Request, ctx: { params: Promise<{ id: string }> }) => {
  await requireApiKey(req);
  const { id } = await ctx.params;
  const notFound = new ApiError(404, "not_found", `No task with id '${id.slice(0, 64)}'`);
  if (!TaskId.safeParse(id).success) throw notFound;
  const { data: task, error } = await db().from("tasks").select("id").eq("id", id).maybeSingle();
  if (error) throw new Error(`task lookup failed: ${error.message}`);
  if (!task) throw notFound;
  const artifacts = await listArtifacts(db(), id);
  return Response.json({
    task_id: id,
    artifacts: artifacts.map(({ id: artifactId, ...a }) => ({ artifact_id: artifactId, ...a, url: `/api/artifacts/${artifactId}` })),
  });
});

export const { POST, PUT, PATCH, DELETE } = methodNotAllowed(["GET"]);
