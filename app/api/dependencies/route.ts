// GET /api/dependencies — every upstream dependency's circuit breaker: state (closed / open / half_open), since when,
// consecutive failures, the next probe and the last error. The console's breaker panel shows the same.
import { methodNotAllowed } from "@/lib/http/methods";
import { listBreakers } from "@/lib/breakers";
import { db } from "@/lib/db/server";
import { requireApiKey } from "@/lib/http/auth";
import { withErrors } from "@/lib/http/errors";

export const dynamic = "force-dynamic";

export const GET = withErrors(async (req: Request) => {
  await requireApiKey(req);
  return Response.json({ dependencies: await listBreakers(db()) });
});

export const { POST, PUT, PATCH, DELETE } = methodNotAllowed(["GET"]);
