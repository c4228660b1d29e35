// POST /api/approvals/:id — decide an approval (API-key auth). GET — its state.
//
// Body: { "decision": "approve" | "approve_with_changes" | "reject", "notes"?: string, "edited_text"?: string }
//   notes: what to change (required, non-empty, for approve_with_changes) or the feedback (reject).
//   edited_text (approve only): the reviewer's own version of the draft; the task publishes it as its result.
// 200 { approval_id, task_id, outcome: "decided" | "repeat", status, notes, decided_by, decided_at, decided_via, edited_text? }
// 409 { error: { code: "already_decided" | "expired", message, details: { status, notes, decided_at, decided_via } } }
// 404 unknown or malformed id, or not visible yet. 400 invalid body (naming the field). 401 no/invalid key.
import { methodNotAllowed } from "@/lib/http/methods";
import { ApprovalId, approvalWire, decideApproval, DecisionBody, getApproval } from "@/lib/approvals";
import { relayAfterResponse } from "@/inngest/outbox-relay";
import { db } from "@/lib/db/server";
import { requireApiKey } from "@/lib/http/auth";
import { readJsonBody } from "@/lib/http/body";
import { ApiError, withErrors } from "@/lib/http/errors";
import { parseOr400 } from "@/lib/http/validation";

export const dynamic = "force-dynamic";

type Ctx = { params: Promise<{ id: string }> };

function notFound(id: string): ApiError {
  return new ApiError(404, "not_found", `No approval with id '${id.slice(0, 64)}'`);
}

export const POST = withErrors(async (req: Request, ctx: Ctx) => {
  const { apiKeyId } = await requireApiKey(req);
  const { id } = await ctx.params;
  // A malformed id cannot name an approval: the same 404 as an unknown one, before reading the body.
  if (!ApprovalId.safeParse(id).success) throw notFound(id);
  const body = parseOr400(DecisionBody, await readJsonBody(req));
  const result = await decideApproval(db(), id, body, `api:${apiKeyId}`, "api", { relay: "none" });
  switch (result.outcome) {
    case "not_found":
      throw notFound(id);
    case "decided":
    case "repeat":
      relayAfterResponse();
      return Response.json({ ...result.approval, outcome: result.outcome });
    case "conflict":
    case "expired": {
      const a = result.approval;
      const details = { status: a.status, notes: a.notes, decided_at: a.decided_at, decided_via: a.decided_via };
      if (result.outcome === "expired") {
        throw new ApiError(
          409,
          "expired",
          `The approval's deadline passed and its auto action applied: it is ${a.status} (at ${a.decided_at})`,
          details,
        );
      }
      throw new ApiError(
        409,
        "already_decided",
        `The approval was already decided differently: it is ${a.status} (via ${a.decided_via}, at ${a.decided_at})`,
        details,
      );
    }
  }
});

export const GET = withErrors(async (req: Request, ctx: Ctx) => {
  await requireApiKey(req);
  const { id } = await ctx.params;
  const a = await getApproval(db(), id);
  if (!a) throw notFound(id);
  return Response.json(approvalWire(a));
});

export const { PUT, PATCH, DELETE } = methodNotAllowed(["GET", "POST"]);
