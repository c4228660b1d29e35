// GET /api/spend — what the agents spent: per agent per local day (against each day's cap) and per model, over a
// range of days; `task_id` narrows it to one task. Figures are integer micro-dollars, with USD for display.
import { methodNotAllowed } from "@/lib/http/methods";
import { z } from "zod";
import { spendByAgentDay, spendByModel, spendByTask } from "@/lib/budget";
import { db } from "@/lib/db/server";
import { requireApiKey } from "@/lib/http/auth";
import { withErrors } from "@/lib/http/errors";
import { parseOr400 } from "@/lib/http/validation";

export const dynamic = "force-dynamic";

const Day = z.iso.date({ message: "must be a date, YYYY-MM-DD" });
const SpendQuery = z
  .strictObject({
    from: Day.optional(),
    to: Day.optional(),
    agent: z.string().regex(/^[a-z][a-z0-9_-]{1,39}$/, "must be an agent id").optional(),
    task_id: z.uuid().optional(),
  })
  .refine((q) => !q.from || !q.to || q.from <= q.to, { message: "from must not be after to", path: ["from"] });

const usd = (micros: number | string | bigint) => Number(micros) / 1_000_000;

export const GET = withErrors(async (req: Request) => {
  await requireApiKey(req);
  const q = parseOr400(SpendQuery, Object.fromEntries(new URL(req.url).searchParams), "query");
  const [byDay, byModel, byTask] = await Promise.all([
    q.task_id ? Promise.resolve([]) : spendByAgentDay(db(), { agentId: q.agent, from: q.from, to: q.to }),
    spendByModel(db(), { from: q.from, to: q.to, agentId: q.agent, taskId: q.task_id }),
    q.task_id ? spendByTask(db(), q.task_id) : Promise.resolve(null),
  ]);
  return Response.json({
    // batch_saving_micros: what the Batches API's discount saved (full price − paid), per agent and night (window).
    by_agent_day: byDay.map((d) => ({ ...d, settled_usd: usd(d.settled_micros), cap_usd: usd(d.cap_micros), batch_saving_usd: usd(d.batch_saving_micros) })),
    by_model: byModel.map((m) => ({ ...m, settled_usd: usd(m.settled_micros) })),
    ...(q.task_id
      ? { task: byTask ? { ...byTask, settled_usd: usd(byTask.settled_micros), batch_saving_usd: usd(byTask.batch_saving_micros) } : null }
      : {}),
  });
});

export const { POST, PUT, PATCH, DELETE } = methodNotAllowed(["GET"]);
