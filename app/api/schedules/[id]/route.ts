// GET / PATCH / DELETE /api/schedules/:id. PATCH takes any subset of the fields POST takes; a new cron, time zone
// or enabling recomputes next_run_at from now.
import { methodNotAllowed } from "@/lib/http/methods";
import { db } from "@/lib/db/server";
import { requireApiKey } from "@/lib/http/auth";
import { readJsonBody } from "@/lib/http/body";
import { ApiError, withErrors } from "@/lib/http/errors";
import { parseOr400 } from "@/lib/http/validation";
import { ScheduleId, UpdateScheduleBody } from "@/lib/schedules/schema";
import { deleteSchedule, getSchedule, updateSchedule } from "@/lib/schedules/service";

export const dynamic = "force-dynamic";

type Ctx = { params: Promise<{ id: string }> };

async function idOf(ctx: Ctx): Promise<string> {
  const { id } = await ctx.params;
  if (!ScheduleId.safeParse(id).success) throw notFound(id);
  return id;
}

const notFound = (id: string) => new ApiError(404, "not_found", `No schedule with id '${id.slice(0, 64)}'`);

export const GET = withErrors(async (req: Request, ctx: Ctx) => {
  await requireApiKey(req);
  const id = await idOf(ctx);
  const s = await getSchedule(db(), id);
  if (!s) throw notFound(id);
  return Response.json(s);
});

export const PATCH = withErrors(async (req: Request, ctx: Ctx) => {
  await requireApiKey(req);
  const id = await idOf(ctx);
  const body = parseOr400(UpdateScheduleBody, await readJsonBody(req));
  const s = await updateSchedule(db(), id, body);
  if (!s) throw notFound(id);
  return Response.json(s);
});

export const DELETE = withErrors(async (req: Request, ctx: Ctx) => {
  await requireApiKey(req);
  const id = await idOf(ctx);
  if (!(await deleteSchedule(db(), id))) throw notFound(id);
  return new Response(null, { status: 204 });
});

export const { POST, PUT } = methodNotAllowed(["GET", "PATCH", "DELETE"]);
