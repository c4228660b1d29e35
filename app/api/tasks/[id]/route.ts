// GET /api/tasks/:id — status, progress, result, error and cost of one task.
import { methodNotAllowed } from "@/lib/http/methods";
import { db } from "@/lib/db/server";
import { requireApiKey } from "@/lib/http/auth";
import { ApiError, withErrors } from "@/lib/http/errors";
import { TaskId } from "@/lib/tasks/schema";
import { getTask } from "@/lib/tasks/service";

export const dynamic = "force-dynamic";

export const GET = withErrors(async (req: Request, ctx: { params: Promise<{ id: string }> }) => {
  await requireApiKey(req);
  const { id } = await ctx.params;
  // A malformed id cannot name a task: same 404 as an unknown one.
  const task = TaskId.safeParse(id).success ? await getTask(db(), id) : null;
  if (!task) throw new ApiError(404, "not_found", `No task with id '${id.slice(0, 64)}'`);
  return Response.json(task);
});

export const { POST, PUT, PATCH, DELETE } = methodNotAllowed(["GET"]);
