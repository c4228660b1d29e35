// GET /api/dead-letters?status=&agent=&cursor=&limit= — the failed work waiting for review, newest first.
import { methodNotAllowed } from "@/lib/http/methods";
import { listDeadLetters, ListDeadLettersQuery } from "@/lib/dead-letters";
import { db } from "@/lib/db/server";
import { requireApiKey } from "@/lib/http/auth";
import { withErrors } from "@/lib/http/errors";
import { parseOr400 } from "@/lib/http/validation";

export const dynamic = "force-dynamic";

export const GET = withErrors(async (req: Request) => {
  await requireApiKey(req);
  const q = parseOr400(ListDeadLettersQuery, Object.fromEntries(new URL(req.url).searchParams), "query");
  return Response.json(await listDeadLetters(db(), q));
});

export const { POST, PUT, PATCH, DELETE } = methodNotAllowed(["GET"]);
