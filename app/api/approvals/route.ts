// GET /api/approvals?status=&task_id=&limit=&cursor= — visible approvals, pending and past, newest request first:
// `{ approvals, next_cursor }`. An API-only client finds what waits (status=pending) and decides it with
// POST /api/approvals/:id.
import { methodNotAllowed } from "@/lib/http/methods";
import { listApprovals, ListApprovalsQuery } from "@/lib/approvals";
import { db } from "@/lib/db/server";
import { requireApiKey } from "@/lib/http/auth";
import { withErrors } from "@/lib/http/errors";
import { parseOr400 } from "@/lib/http/validation";

export const dynamic = "force-dynamic";

export const GET = withErrors(async (req: Request) => {
  await requireApiKey(req);
  const q = parseOr400(ListApprovalsQuery, Object.fromEntries(new URL(req.url).searchParams), "query");
  return Response.json(await listApprovals(db(), q));
});

export const { POST, PUT, PATCH, DELETE } = methodNotAllowed(["GET"]);
