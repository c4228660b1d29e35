// GET /api/digest?date=YYYY-MM-DD — the morning digest of that local date (default: today in NIGHTSHIFT_TIMEZONE)
// as JSON, assembled now (a preview before the digest time; what was sent after it).
import { z } from "zod";
import { db } from "@/lib/db/server";
import { methodNotAllowed } from "@/lib/http/methods";
import { assembleDigest, digestConfig, localDate } from "@/lib/digest";
import { env } from "@/lib/env";
import { requireApiKey } from "@/lib/http/auth";
import { withErrors } from "@/lib/http/errors";
import { parseOr400 } from "@/lib/http/validation";

export const dynamic = "force-dynamic";

const Query = z.strictObject({
  date: z
    .string()
    .regex(/^\d{4}-\d{2}-\d{2}$/, "date must be YYYY-MM-DD")
    .refine((d) => !Number.isNaN(Date.parse(`${d}T00:00:00Z`)), "date must be a real calendar date")
    .optional(),
});

export const GET = withErrors(async (req: Request) => {
  await requireApiKey(req);
  const q = parseOr400(Query, Object.fromEntries(new URL(req.url).searchParams), "query");
  const cfg = digestConfig(env());
  const date = q.date ?? localDate(new Date(), cfg.timezone);
  return Response.json(await assembleDigest(db(), cfg, date));
});

export const { POST, PUT, PATCH, DELETE } = methodNotAllowed(["GET"]);
