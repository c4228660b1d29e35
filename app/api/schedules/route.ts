// GET /api/schedules lists schedules; POST creates one (201). Cron and time zone are validated by croner (400
// naming `cron` or `timezone`).
import { methodNotAllowed } from "@/lib/http/methods";
import { db } from "@/lib/db/server";
import { requireApiKey } from "@/lib/http/auth";
import { readJsonBody } from "@/lib/http/body";
import { withErrors } from "@/lib/http/errors";
import { parseOr400 } from "@/lib/http/validation";
import { CreateScheduleBody } from "@/lib/schedules/schema";
import { createSchedule, listSchedules } from "@/lib/schedules/service";

export const dynamic = "force-dynamic";

export const GET = withErrors(async (req: Request) => {
  await requireApiKey(req);
  return Response.json({ schedules: await listSchedules(db()) });
});

export const POST = withErrors(async (req: Request) => {
  await requireApiKey(req);
  const body = parseOr400(CreateScheduleBody, await readJsonBody(req));
  const schedule = await createSchedule(db(), body);
  return Response.json(schedule, { status: 201, headers: { Location: `/api/schedules/${schedule.id}` } });
});

export const { PUT, PATCH, DELETE } = methodNotAllowed(["GET", "POST"]);
