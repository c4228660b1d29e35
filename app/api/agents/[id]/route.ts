// GET /api/agents/:id — one agent (as in GET /api/agents) with its recent settings changes.
// PATCH /api/agents/:id — change budget, limits, model, approval rule, time zone or enabled. Body: any of
//   { daily_budget_micros, max_turns, max_tokens, wall_clock_seconds, concurrency, model, requires_approval,
//     approval_timeout_seconds, approval_auto_action, budget_timezone, enabled }
// The change and its audit record (who: the API key, when, each field from → to) are written by one Postgres
// function. 200 { agent, change: { change_id, changes } | null } (null: nothing differed); 400 names the field;
// 404 unknown agent. Takes effect for the next model call; a raised cap wakes tasks waiting for budget.
import { methodNotAllowed } from "@/lib/http/methods";
import { AgentPatch, AgentSettingsError, getAgent, listAgentChanges, updateAgentSettings } from "@/lib/agents/settings";
import { db } from "@/lib/db/server";
import { requireApiKey } from "@/lib/http/auth";
import { readJsonBody } from "@/lib/http/body";
import { ApiError, withErrors } from "@/lib/http/errors";
import { parseOr400 } from "@/lib/http/validation";

export const dynamic = "force-dynamic";

type Ctx = { params: Promise<{ id: string }> };
const notFound = (id: string) => new ApiError(404, "not_found", `No agent with id '${id.slice(0, 64)}'`);

export const GET = withErrors(async (req: Request, ctx: Ctx) => {
  await requireApiKey(req);
  const { id } = await ctx.params;
  const agent = await getAgent(db(), id);
  if (!agent) throw notFound(id);
  return Response.json({ ...agent, changes: await listAgentChanges(db(), id) });
});

export const PATCH = withErrors(async (req: Request, ctx: Ctx) => {
  const { apiKeyId } = await requireApiKey(req);
  const { id } = await ctx.params;
  const patch = parseOr400(AgentPatch, await readJsonBody(req));
  try {
    const r = await updateAgentSettings(db(), id, patch, `api:${apiKeyId}`);
    if (r.outcome === "not_found") throw notFound(id);
    const [change] = r.change_id === null ? [] : await listAgentChanges(db(), id, 1);
    return Response.json({ agent: r.agent, change: change && change.id === r.change_id ? { change_id: change.id, changes: change.changes, actor: change.actor, changed_at: change.changed_at } : null });
  } catch (e) {
    if (e instanceof AgentSettingsError) {
      throw new ApiError(400, "invalid_request", `Invalid request body: ${e.message}`);
    }
    throw e;
  }
});

export const { POST, PUT, DELETE } = methodNotAllowed(["GET", "PATCH"]);
