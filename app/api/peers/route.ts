// GET /api/peers — the peer deployments a task can name as its `next_hop` (rows of `peers`): where a hop goes and
// whether the variable holding the shared secret is set here (never the secret). Peers are configured in SQL
// (docs/webhooks.md).
import { methodNotAllowed } from "@/lib/http/methods";
import { db } from "@/lib/db/server";
import { requireApiKey } from "@/lib/http/auth";
import { withErrors } from "@/lib/http/errors";
import { listPeers } from "@/lib/webhooks/peers";

export const dynamic = "force-dynamic";

export const GET = withErrors(async (req: Request) => {
  await requireApiKey(req);
  return Response.json({ peers: await listPeers(db()) });
});

export const { POST, PUT, PATCH, DELETE } = methodNotAllowed(["GET"]);
