// Approvals (mission pattern 6): typed wrappers around the approval functions in Postgres, and `decideApproval`,
// the one way a reviewer's decision is made — by the API route and by the console alike.
//
// The order that makes a decision impossible to lose: the decision is written by a compare-and-set in Postgres
// (decide_approval) and, in the same transaction, the wake-up `approval/decision.made` (stable id) is recorded in
// the outbox (decide_approval_announced); the outbox relay sends it. The event is just a wake-up — the waiting
// function reads the decision from the database on wake-up and on timeout (inngest/approval.ts). So even if the
// event were lost, the run still resumes with this decision, only later: at the deadline.
import { z } from "zod";
import { encodeKeyset, keysetBound, olderThan } from "@/lib/db/keyset";
import type { AdminClient } from "@/lib/db/admin";
import type { Json, Tables } from "@/lib/db/database.types";
import { kickOutboxRelay } from "@/lib/outbox";

export const DECISIONS = ["approve", "approve_with_changes", "reject"] as const;
export type Decision = (typeof DECISIONS)[number];
export type ApprovalStatus = "pending" | "approved" | "approved_with_changes" | "rejected" | "expired";
export type DecidedStatus = Exclude<ApprovalStatus, "pending">;
/** Who decided: a person in the console, an app through the API, or the deadline's auto action. */
export type DecidedVia = "console" | "api" | "timeout";
export type AutoAction = "reject" | "approve";

export const MAX_NOTES_CHARS = 20_000;
/** The longest edited draft a reviewer can publish in place of the agent's (the column's check). */
export const MAX_EDITED_CHARS = 200_000;
export const DEFAULT_APPROVAL_TIMEOUT_SECONDS = 24 * 60 * 60;

/**
 * The most a draft may weigh as JSON text (UTF-8 bytes). approvals.draft checks octet_length(draft::text) <= 65536
 * (20261126091000_approvals.sql); jsonb's text adds a space after each ':' and ',', hence the margin. Characters are
 * not bytes: 50,000 "é" are 100 KB, and a newline is two bytes once escaped.
 */
export const MAX_DRAFT_BYTES = 65_536 - 1_024;

/** The size approvals.draft's check sees (near enough: see MAX_DRAFT_BYTES), in bytes. */
export function draftBytes(draft: Json): number {
  return new TextEncoder().encode(JSON.stringify(draft)).length;
}

/**
 * The longest start of `text` for which build(text) fits MAX_DRAFT_BYTES (the whole text when it fits), never cut
 * inside a surrogate pair (a lone half cannot be stored).
 */
export function fitDraftText(text: string, build: (text: string) => Json): string {
  if (draftBytes(build(text)) <= MAX_DRAFT_BYTES) return text;
  let lo = 0;
  let hi = text.length;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (draftBytes(build(text.slice(0, mid))) <= MAX_DRAFT_BYTES) lo = mid;
    else hi = mid - 1;
  }
  const c = text.charCodeAt(lo - 1);
  return text.slice(0, c >= 0xd800 && c <= 0xdbff ? lo - 1 : lo);
}

/** "auto-approved" / "auto-rejected": what the deadline does, in words. */
export function autoActionWords(a: AutoAction): string {
  return a === "approve" ? "auto-approved" : "auto-rejected";
}

/** `POST /api/approvals/:id` and the console's forms: one shape for every decision. */
export const DecisionBody = z
  .strictObject({
    decision: z.enum(DECISIONS, { error: "decision must be approve, approve_with_changes or reject" }),
    /** What to change (approve_with_changes: required) or why (reject: the feedback; approve: a comment). */
    notes: z
      .string({ error: "notes must be a string" })
      .trim()
      .max(MAX_NOTES_CHARS, `notes must be at most ${MAX_NOTES_CHARS} characters`)
      .optional(),
    /** Approve with the reviewer's own version of the draft: this text is published as the task's result. */
    edited_text: z
      .string({ error: "edited_text must be a string" })
      .max(MAX_EDITED_CHARS, `edited_text must be at most ${MAX_EDITED_CHARS} characters`)
      .refine((t) => t.trim().length > 0, "edited_text must not be empty")
      .optional(),
  })
  .superRefine((b, ctx) => {
    if (b.edited_text !== undefined && b.decision !== "approve") {
      ctx.addIssue({ code: "custom", path: ["edited_text"], message: "edited_text goes with decision approve (the edited draft is published as is)" });
    }
    if (b.decision === "approve_with_changes" && !b.notes) {
      ctx.addIssue({ code: "custom", path: ["notes"], message: "notes are required for approve_with_changes: say what to change" });
    }
  });
export type DecisionBody = z.infer<typeof DecisionBody>;

export const ApprovalId = z.uuid();

export type ApprovalRow = Tables<"approvals">;

/** The decided state of an approval, as decide_approval and expire_approval report it. */
export interface ApprovalState {
  approval_id: string;
  task_id: string;
  status: ApprovalStatus;
  notes: string | null;
  decided_by: string | null;
  decided_at: string | null;
  decided_via: DecidedVia | null;
  /** The reviewer's edited draft, published instead of the agent's text (approve with an edit). */
  edited_text?: string | null;
}

export type DecideResult =
  /** 200: this call decided, or repeated the decision already made; its wake-up event is recorded in the outbox. */
  | { outcome: "decided" | "repeat"; approval: ApprovalState & { status: DecidedStatus } }
  /** 409: a different decision was made first, or the deadline's auto action applied. */
  | { outcome: "conflict" | "expired"; approval: ApprovalState & { status: DecidedStatus } }
  /** 404: no such approval, or not visible yet (its function has not started waiting). */
  | { outcome: "not_found" };

/** An error from an approval function, with its SQLSTATE (NSP01 unknown task, NSP02 task finished, ...). */
export class ApprovalError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "ApprovalError";
  }
}

function fail(what: string, error: { code?: string; message: string }): never {
  throw new ApprovalError(error.code ?? "unknown", `${what} failed: ${error.message}`);
}

export function statusToDecision(status: DecidedStatus): Decision {
  return status === "approved" ? "approve" : status === "approved_with_changes" ? "approve_with_changes" : "reject";
}

// ------------------------------------------------------------------ the Postgres functions

export async function requestApproval(
  db: AdminClient,
  req: { taskId: string; stage: string; revision: number; draft: Json; timeoutSeconds: number; autoAction: AutoAction },
  now: Date,
): Promise<ApprovalRow> {
  const { data, error } = await db.rpc("request_approval", {
    p_task_id: req.taskId,
    p_stage: req.stage,
    p_revision: req.revision,
    p_draft: req.draft,
    p_timeout_seconds: req.timeoutSeconds,
    p_auto_action: req.autoAction,
    p_now: now.toISOString(),
  });
  if (error) fail("request_approval", error);
  return data as ApprovalRow;
}

export async function publishApproval(db: AdminClient, id: string, now: Date): Promise<ApprovalRow> {
  const { data, error } = await db.rpc("publish_approval", { p_id: id, p_now: now.toISOString() });
  if (error) fail("publish_approval", error);
  return data as ApprovalRow;
}

/** Applies the auto action if the approval is pending past its deadline; returns the final state (null: unknown). */
export async function expireApproval(db: AdminClient, id: string, now: Date): Promise<(ApprovalState & { applied: boolean }) | null> {
  const { data, error } = await db.rpc("expire_approval", { p_id: id, p_now: now.toISOString() });
  if (error) fail("expire_approval", error);
  const row = data?.[0];
  if (!row) return null;
  return {
    applied: row.applied,
    approval_id: row.approval_id,
    task_id: row.task_id,
    status: row.status as ApprovalStatus,
    notes: row.notes,
    decided_by: row.decided_by,
    decided_at: row.decided_at,
    decided_via: row.decided_via as DecidedVia | null,
  };
}

/** One visible approval (null: unknown, malformed id, or not visible yet). */
export async function getApproval(db: AdminClient, id: string): Promise<ApprovalRow | null> {
  if (!ApprovalId.safeParse(id).success) return null;
  const { data, error } = await db.from("approvals").select("*").eq("id", id).not("visible_at", "is", null).maybeSingle();
  if (error) fail("approval read", error);
  return data;
}

/** The review queue: visible pending approvals, oldest first. */
export async function listPendingApprovals(db: AdminClient, limit = 100): Promise<ApprovalRow[]> {
  const { data, error } = await db
    .from("approvals")
    .select("*")
    .eq("status", "pending")
    .not("visible_at", "is", null)
    .order("requested_at", { ascending: true })
    .order("id", { ascending: true })
    .limit(limit);
  if (error) fail("approval list", error);
  return data;
}

/** Every approval of a task (its history, for the task page), oldest first. */
export async function listTaskApprovals(db: AdminClient, taskId: string): Promise<ApprovalRow[]> {
  const { data, error } = await db
    .from("approvals")
    .select("*")
    .eq("task_id", taskId)
    .order("requested_at", { ascending: true })
    .order("revision", { ascending: true });
  if (error) fail("approval list", error);
  return data;
}

// ------------------------------------------------------------------ deciding

/**
 * Decides an approval: the compare-and-set and the wake-up event's outbox record, in one transaction. `actor` is
 * recorded as decided_by (e.g. `api:<key id>`, `console:operator`). `relay: "none"` when the caller relays itself
 * after its response; by default a relay pass starts in the background.
 */
export async function decideApproval(
  db: AdminClient,
  id: string,
  body: DecisionBody,
  actor: string,
  via: Exclude<DecidedVia, "timeout">,
  opts: { now?: Date; relay?: "background" | "none" } = {},
): Promise<DecideResult> {
  if (!ApprovalId.safeParse(id).success) return { outcome: "not_found" };
  const now = (opts.now ?? new Date()).toISOString();
  // An edited approve goes through approve_with_edit, which decides (and records the wake-up) through
  // decide_approval_announced — the same compare-and-set — and stores the text in the same transaction.
  const { data, error } =
    body.edited_text !== undefined
      ? await db.rpc("approve_with_edit", { p_id: id, p_text: body.edited_text, p_actor: actor, p_via: via, p_now: now })
      : await db.rpc("decide_approval_announced", {
          p_id: id,
          p_decision: body.decision,
          p_notes: body.notes ?? null,
          p_actor: actor,
          p_via: via,
          p_now: now,
        } as never);
  if (error) fail(body.edited_text !== undefined ? "approve_with_edit" : "decide_approval_announced", error);
  const row = (data as { outcome: string; approval_id: string; task_id: string | null; status: string | null; notes: string | null; decided_by: string | null; decided_at: string | null; decided_via: string | null; edited_text?: string | null }[] | null)?.[0];
  if (!row || row.outcome === "not_found") return { outcome: "not_found" };
  const approval = {
    approval_id: row.approval_id,
    task_id: row.task_id!,
    status: row.status as DecidedStatus,
    notes: row.notes,
    decided_by: row.decided_by,
    decided_at: row.decided_at,
    decided_via: row.decided_via as DecidedVia,
    ...(row.edited_text !== undefined ? { edited_text: row.edited_text } : {}),
  };
  switch (row.outcome) {
    case "decided":
    case "repeat":
      if (opts.relay !== "none") void kickOutboxRelay();
      return { outcome: row.outcome, approval };
    case "conflict":
    case "expired":
      return { outcome: row.outcome, approval };
    default:
      throw new ApprovalError("unknown", `decide_approval returned an unknown outcome '${row.outcome}'`);
  }
}

// ------------------------------------------------------------------ reads for the API

/** The wire shape of an approval (GET /api/approvals, GET /api/approvals/:id). */
export function approvalWire(a: ApprovalRow) {
  return {
    approval_id: a.id,
    task_id: a.task_id,
    stage: a.stage,
    revision: a.revision,
    status: a.status,
    draft: a.draft,
    notes: a.notes,
    edited_text: a.edited_text,
    auto_action: a.auto_action,
    requested_at: a.requested_at,
    visible_at: a.visible_at,
    expires_at: a.expires_at,
    decided_at: a.decided_at,
    decided_by: a.decided_by,
    decided_via: a.decided_via,
  };
}
export type ApprovalWire = ReturnType<typeof approvalWire>;

export const APPROVAL_STATUSES = ["pending", "approved", "approved_with_changes", "rejected", "expired"] as const;

export const ListApprovalsQuery = z.strictObject({
  status: z.enum(APPROVAL_STATUSES, { error: `status must be one of ${APPROVAL_STATUSES.join(", ")}` }).optional(),
  task_id: z.uuid({ error: "task_id must be a task id (UUID)" }).optional(),
  limit: z.coerce.number().int().min(1).max(100).default(50),
  cursor: z.string().max(200).optional(),
});
export type ListApprovalsQuery = z.infer<typeof ListApprovalsQuery>;

/** Visible approvals, newest request first; pending or past, optionally of one task. */
export async function listApprovals(db: AdminClient, q: ListApprovalsQuery): Promise<{ approvals: ApprovalWire[]; next_cursor: string | null }> {
  let query = db
    .from("approvals")
    .select("*")
    .not("visible_at", "is", null)
    .order("requested_at", { ascending: false })
    .order("id", { ascending: false })
    .limit(q.limit + 1);
  if (q.status) query = query.eq("status", q.status);
  if (q.task_id) query = query.eq("task_id", q.task_id);
  if (q.cursor) {
    // Cursor over (requested_at desc, id desc), decoded strictly; not one we issued -> 400 (lib/db/keyset.ts).
    query = query.lte("requested_at", keysetBound(q.cursor)).or(olderThan("requested_at", q.cursor));
  }
  const { data, error } = await query;
  if (error) fail("approval list", error);
  const page = data.slice(0, q.limit);
  const last = page[page.length - 1];
  return {
    approvals: page.map(approvalWire),
    next_cursor:
      data.length > q.limit && last ? encodeKeyset(last.requested_at, last.id) : null,
  };
}

/** The reviewer's edited draft of a decided approval, if any (read by the run when it resumes). */
export async function approvalEditedText(db: AdminClient, id: string): Promise<string | null> {
  const { data, error } = await db.from("approvals").select("edited_text").eq("id", id).maybeSingle();
  if (error) fail("approval read", error);
  return data?.edited_text ?? null;
}
