// GET /api/agents — every agent with its settings, today's spend against its cap and the concurrency in use.
import { methodNotAllowed } from "@/lib/http/methods";
import { listAgents } from "@/lib/agents/settings";
import { db } from "@/lib/db/server";
import { requireApiKey } from "@/lib/http/auth";
import { withErrors } from "@/lib/http/errors";

export const dynamic = "force-dynamic";

export const GET = withErrors(async (req: Request) => {
  await requireApiKey(req);
  return Response.json({ agents: await listAgents(db()) });
});

export const { POST, PUT, PATCH, DELETE } = methodNotAllowed(["GET"]);
