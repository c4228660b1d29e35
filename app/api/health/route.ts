// GET /api/health: liveness for load balancers and deploy checks. Reveals nothing and touches no data, so it
// is the one route without authentication (and the baseline of `npm run bench:submit`).
import { methodNotAllowed } from "@/lib/http/methods";

export const dynamic = "force-dynamic";

export function GET(): Response {
  return Response.json({ ok: true });
}

export const { POST, PUT, PATCH, DELETE } = methodNotAllowed(["GET"]);
