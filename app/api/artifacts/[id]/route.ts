// GET /api/artifacts/:id — one artifact: `{ artifact_id, task_id, name, content_type, bytes, sha256, created_at,
// content }`. With `?format=raw` the content itself, served with its own Content-Type and Content-Length (as a
// download-safe attachment: nosniff, no inline HTML). 404 unknown or malformed id.
import { methodNotAllowed } from "@/lib/http/methods";
import { z } from "zod";
import { getArtifact } from "@/lib/artifacts";
import { db } from "@/lib/db/server";
import { requireApiKey } from "@/lib/http/auth";
import { ApiError, withErrors } from "@/lib/http/errors";
import { parseOr400 } from "@/lib/http/validation";

export const dynamic = "force-dynamic";

const Query = z.strictObject({ format: z.enum(["json", "raw"], { error: "format must be json or raw" }).optional() });

export const GET = withErrors(async (req: Request, ctx: { params: Promise<{ id: string }> }) => {
  await requireApiKey(req);
  const { id } = await ctx.params;
  const q = parseOr400(Query, Object.fromEntries(new URL(req.url).searchParams), "query");
  const a = z.uuid().safeParse(id).success ? await getArtifact(db(), id) : null;
  if (!a) throw new ApiError(404, "not_found", `No artifact with id '${id.slice(0, 64)}'`);
  if (q.format === "raw") {
    const filename = a.name.replace(/[^A-Za-z0-9._-]+/g, "_").slice(0, 100) || "artifact";
    return new Response(a.content, {
      headers: {
        "Content-Type": `${a.content_type}; charset=utf-8`,
        "Content-Length": String(Buffer.byteLength(a.content, "utf8")),
        "Content-Disposition": `inline; filename="${filename}"`,
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
      },
    });
  }
  const { id: artifactId, ...rest } = a;
  return Response.json({ artifact_id: artifactId, ...rest });
});

export const { POST, PUT, PATCH, DELETE } = methodNotAllowed(["GET"]);
