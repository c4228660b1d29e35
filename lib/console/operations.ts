// What the console's forms do, free of Next.js request plumbing: each operation takes the request headers, the
// session cookie value and the submitted form, and answers a plain result. The server actions in app/ are thin
// wrappers around these, and the integration tests call them directly with forged headers, cookies and forms.
import { randomUUID } from "node:crypto";
import { z } from "zod";
import { AgentId, AgentPatch, AgentSettingsError, listAgentChanges, updateAgentSettings } from "@/lib/agents/settings";
import { ApprovalId, decideApproval, DecisionBody } from "@/lib/approvals";
import type { AdminClient } from "@/lib/db/admin";
import { ApiError } from "@/lib/http/errors";
import { unstorableText } from "@/lib/http/json-limits";
import { cancelTask } from "@/lib/tasks/cancel";
import { CreateTaskBody, IdempotencyKey, MAX_PROMPT_CHARS, TaskId } from "@/lib/tasks/schema";
import { submitTask } from "@/lib/tasks/submit";
import { consoleConfig, ConsoleConfigError, type ConsoleConfig } from "./config";
import { checkSameOrigin, CSRF_FIELD, csrfTokenValid, type HeaderBag } from "./csrf";
import { parseUsd } from "./format";
import { clientAddress, postgresLoginLimiter, type LoginLimiter } from "./rate-limit";
import { recordSession } from "./session-store";
import { newSession, passwordMatches, signSession, verifySession, type Session } from "./session";

export { sessionOf } from "./session";

export interface RequestContext {
  headers: HeaderBag;
  /** Value of the session cookie, if the request carried one. */
  sessionCookie?: string | null;
  form: FormData;
  now?: number;
}

export type Refusal = { ok: false; code: string; error: string };

// ---------------------------------------------------------------------------------------------------- sign-in

export type SignInResult =
  | { ok: true; session: Session; cookieValue: string; secure: boolean; next: string }
  | Refusal;

export interface SignInDeps {
  db: AdminClient;
  limiter?: LoginLimiter;
  /** Waits before the password check when the limiter slows sign-in down (tests record it instead). */
  sleep?: (ms: number) => Promise<void>;
}

export async function signIn(ctx: RequestContext, deps: SignInDeps): Promise<SignInResult> {
  let config: ConsoleConfig;
  try {
    config = consoleConfig();
  } catch (e) {
    if (e instanceof ConsoleConfigError) return { ok: false, code: "not_configured", error: e.message };
    throw e;
  }
  const origin = checkSameOrigin(ctx.headers);
  if (!origin.ok) return { ok: false, code: "csrf", error: `Sign-in refused: ${origin.reason}.` };

  const now = ctx.now ?? Date.now();
  const limiter = deps.limiter ?? postgresLoginLimiter(deps.db);
  const client = clientAddress(ctx.headers);
  const verdict = await limiter.begin(client, now);
  if (!verdict.allowed) {
    const minutes = Math.max(1, Math.ceil(verdict.retryAfterMs / 60_000));
    return {
      ok: false,
      code: "rate_limited",
      error: `Too many failed sign-ins. Try again in ${minutes} minute${minutes === 1 ? "" : "s"}.`,
    };
  }
  if (verdict.delayMs > 0) await (deps.sleep ?? sleep)(verdict.delayMs);
  const password = ctx.form.get("password");
  if (typeof password !== "string" || !passwordMatches(password, config.operatorPassword)) {
    await limiter.finish(client, false, now);
    return { ok: false, code: "invalid", error: "Wrong password." };
  }
  await limiter.finish(client, true, now);
  const session = newSession(config, now);
  await recordSession(deps.db, session);
  return {
    ok: true,
    session,
    cookieValue: signSession(config, session),
    secure: isHttps(ctx.headers),
    next: safeNext(ctx.form.get("next")),
  };
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Only a same-origin path may follow sign-in. Checked after URL normalisation, the way a browser will read it:
 * the value is parsed against a fixed origin and must keep that origin, and the normalised path must not start
 * with `//` or `/\\` (a browser reads `Location: //host/x` as another host). So `/.//evil:1/x`, `/./\\evil`,
 * `/..//evil`, `/%2e//evil`, `https://evil`, `//evil` and `/\\evil` all end at `/`.
 */
export function safeNext(value: FormDataEntryValue | null): string {
  if (typeof value !== "string" || value.length === 0 || value.length > 500 || !value.startsWith("/")) return "/";
  let url: URL;
  try {
    url = new URL(value, NEXT_BASE);
  } catch {
    return "/";
  }
  if (url.origin !== NEXT_BASE.origin) return "/";
  const path = `${url.pathname}${url.search}${url.hash}`;
  if (!path.startsWith("/") || path.startsWith("//") || path.startsWith("/\\")) return "/";
  if (url.pathname === "/login" || url.pathname.startsWith("/login/")) return "/";
  // Printable ASCII only after normalisation (the URL parser percent-encodes everything else).
  if (!/^[\x21-\x7e]+$/.test(path)) return "/";
  return path;
}

const NEXT_BASE = new URL("http://nightshift.invalid/");

export function isHttps(h: HeaderBag): boolean {
  const proto = h.get("x-forwarded-proto")?.split(",")[0]?.trim().toLowerCase();
  return proto === "https";
}

// --------------------------------------------------------------------------------------------- session checks

export type Guarded = { ok: true; session: Session; config: ConsoleConfig } | Refusal;

/** Every mutation starts here: a live session, a same-origin request, and the session's CSRF token in the form. */
export function guardMutation(ctx: RequestContext): Guarded {
  let config: ConsoleConfig;
  try {
    config = consoleConfig();
  } catch (e) {
    if (e instanceof ConsoleConfigError) return { ok: false, code: "not_configured", error: e.message };
    throw e;
  }
  const session = verifySession(config, ctx.sessionCookie, ctx.now ?? Date.now());
  if (!session) return { ok: false, code: "unauthenticated", error: "Your session has expired. Sign in again." };
  const origin = checkSameOrigin(ctx.headers);
  if (!origin.ok) return { ok: false, code: "csrf", error: `Refused: ${origin.reason}.` };
  // A NUL or lone surrogate cannot be stored: refuse it here, not as a database error.
  for (const [name, value] of ctx.form.entries()) {
    const why = typeof value === "string" ? unstorableText(value) : null;
    if (why) return { ok: false, code: "invalid", error: `The field ${name.slice(0, 40)} ${why}.` };
  }
  if (!csrfTokenValid(config, session, ctx.form.get(CSRF_FIELD))) {
    return { ok: false, code: "csrf", error: "Refused: the form's security token is missing or wrong. Reload the page and try again." };
  }
  return { ok: true, session, config };
}

// ------------------------------------------------------------------------------------------------ queue work

const QueueForm = z.object({
  agent: z.string().min(1, "Choose an agent"),
  prompt: z.string().trim().min(1, "Write what the agent should do").max(MAX_PROMPT_CHARS),
  require_approval: z.boolean(),
  idempotency_key: IdempotencyKey,
});

export type QueueResult = { ok: true; taskId: string; replayed: boolean } | Refusal;

/** A fresh idempotency key for a rendered form: submitting the same form twice queues one task. */
export function newFormKey(): string {
  return `console-${randomUUID()}`;
}

/**
 * Queues work through the same code path as POST /api/tasks (`submitTask`). Console tasks have no API key
 * (api_key_id null); the form's idempotency key makes a double submit (double click, retry after a network
 * error, back + resubmit) queue the task once.
 */
export async function queueWork(ctx: RequestContext, db: AdminClient): Promise<QueueResult> {
  const guard = guardMutation(ctx);
  if (!guard.ok) return guard;
  const parsed = QueueForm.safeParse({
    agent: ctx.form.get("agent"),
    prompt: ctx.form.get("prompt"),
    require_approval: ctx.form.get("require_approval") === "on",
    idempotency_key: ctx.form.get("idempotency_key"),
  });
  if (!parsed.success) return { ok: false, code: "invalid", error: parsed.error.issues[0]!.message };
  const body = CreateTaskBody.safeParse({
    agent: parsed.data.agent,
    prompt: parsed.data.prompt,
    ...(parsed.data.require_approval ? { require_approval: true } : {}),
  });
  if (!body.success) return { ok: false, code: "invalid", error: body.error.issues[0]!.message };
  try {
    // No API key: api_key_id null marks a console task.
    const task = await submitTask(db, body.data, null, parsed.data.idempotency_key);
    return { ok: true, taskId: task.taskId, replayed: task.outcome === "replayed" };
  } catch (e) {
    if (e instanceof ApiError) {
      const message =
        e.status === 409
          ? "This form was already submitted with different content. Reload the page to queue new work."
          : e.message;
      return { ok: false, code: e.code, error: message };
    }
    throw e;
  }
}

// ------------------------------------------------------------------------------------------------ decisions

export type DecideFormResult =
  | { ok: true; outcome: "decided" | "repeat"; status: string; taskId: string; edited?: boolean }
  | (Refusal & { outcome?: "conflict" | "expired" | "not_found"; status?: string; taskId?: string });

/** The actor recorded as decided_by for decisions made in the console (one operator, one password). */
export const CONSOLE_ACTOR = "console:operator";

/**
 * A reviewer's decision from the review page, through lib/approvals.ts's decideApproval — the same compare-and-set
 * and wake-up event as POST /api/approvals/:id. decided/repeat are success; conflict and expired name the decision
 * that stands.
 */
export async function decide(ctx: RequestContext, db: AdminClient): Promise<DecideFormResult> {
  const guard = guardMutation(ctx);
  if (!guard.ok) return guard;
  const id = ctx.form.get("approval_id");
  if (typeof id !== "string" || !ApprovalId.safeParse(id).success) {
    return { ok: false, code: "invalid", error: "Unknown approval.", outcome: "not_found" };
  }
  const notes = ctx.form.get("notes");
  const decision = ctx.form.get("decision");
  // "Edit, then approve": the reviewer's text from the edit box is what the task publishes.
  const edited = decision === "approve_edited" ? ctx.form.get("edited_text") : null;
  if (decision === "approve_edited" && (typeof edited !== "string" || !edited.trim())) {
    return { ok: false, code: "invalid", error: "The edited draft is empty. Write the text to publish, or choose another decision." };
  }
  const body = DecisionBody.safeParse(
    decision === "approve_edited"
      ? { decision: "approve", edited_text: (edited as string).replace(/\r\n/g, "\n") }
      : { decision, ...(typeof notes === "string" && notes.trim() ? { notes } : {}) },
  );
  if (!body.success) {
    const issue = body.error.issues[0]!;
    const message =
      issue.path[0] === "notes" && body.error.issues.length === 1 && /required/.test(issue.message)
        ? "Write the changes you want in the box, then choose “Approve with changes”."
        : issue.message;
    return { ok: false, code: "invalid", error: message };
  }
  const result = await decideApproval(db, id, body.data, CONSOLE_ACTOR, "console");
  switch (result.outcome) {
    case "decided":
    case "repeat":
      return {
        ok: true,
        outcome: result.outcome,
        status: result.approval.status,
        taskId: result.approval.task_id,
        ...(result.approval.edited_text ? { edited: true } : {}),
      };
    case "conflict":
      return {
        ok: false,
        code: "conflict",
        outcome: "conflict",
        status: result.approval.status,
        taskId: result.approval.task_id,
        error: `Already decided: ${result.approval.status.replace(/_/g, " ")}${result.approval.decided_by ? ` by ${result.approval.decided_by}` : ""}. Your decision was not applied.`,
      };
    case "expired":
      return {
        ok: false,
        code: "expired",
        outcome: "expired",
        status: result.approval.status,
        taskId: result.approval.task_id,
        error: `Too late: the deadline passed and the automatic action applied (${result.approval.status.replace(/_/g, " ")}).`,
      };
    case "not_found":
      return { ok: false, code: "not_found", outcome: "not_found", error: "This approval does not exist or is not open for review yet." };
  }
}

// ------------------------------------------------------------------------------------------------ cancel a task

export type CancelFormResult = { ok: true; taskId: string } | (Refusal & { taskId?: string });

/** Cancels a task from its page: the same code path as POST /api/tasks/:id/cancel. */
export async function cancelFromConsole(ctx: RequestContext, db: AdminClient): Promise<CancelFormResult> {
  const guard = guardMutation(ctx);
  if (!guard.ok) return guard;
  const id = ctx.form.get("task_id");
  if (typeof id !== "string" || !TaskId.safeParse(id).success) return { ok: false, code: "invalid", error: "Unknown task." };
  const r = await cancelTask(db, id, "cancelled from the console", CONSOLE_ACTOR);
  if (r.outcome === "not_found") return { ok: false, code: "invalid", error: "Unknown task." };
  if (r.outcome === "already_finished") {
    return { ok: false, code: "conflict", taskId: id, error: `The task had already ended (${r.status}).` };
  }
  return { ok: true, taskId: id };
}

// ------------------------------------------------------------------------------------------------ agent settings

export type AgentFormResult = { ok: true; agentId: string; changed: string[] } | (Refusal & { field?: string });

/**
 * The Agents page's edit form: the same zod schema and the same audited Postgres function as PATCH /api/agents/:id.
 * The form sends every field; only the ones that differ are changed and audited. The budget is typed in dollars
 * and converted to micro-dollars exactly (parseUsd), the approval timeout in minutes.
 */
export async function updateAgentFromConsole(ctx: RequestContext, db: AdminClient): Promise<AgentFormResult> {
  const guard = guardMutation(ctx);
  if (!guard.ok) return guard;
  const f = (k: string) => {
    const v = ctx.form.get(k);
    return typeof v === "string" ? v.trim() : "";
  };
  const id = f("agent_id");
  if (!AgentId.safeParse(id).success) return { ok: false, code: "invalid", error: "Unknown agent." };
  const budget = parseUsd(f("daily_budget_usd"));
  if (budget === null) return { ok: false, code: "invalid", field: "daily_budget_usd", error: "Daily budget: write an amount in dollars, like 2.50." };
  const num = (k: string) => (f(k) === "" ? Number.NaN : Number(f(k)));
  const minutes = num("approval_timeout_minutes");
  const parsed = AgentPatch.safeParse({
    daily_budget_micros: budget,
    max_turns: num("max_turns"),
    max_tokens: num("max_tokens"),
    wall_clock_seconds: num("wall_clock_seconds"),
    concurrency: num("concurrency"),
    model: f("model"),
    requires_approval: f("requires_approval") === "yes",
    approval_timeout_seconds: Number.isFinite(minutes) ? Math.round(minutes * 60) : minutes,
    approval_auto_action: f("approval_auto_action"),
    budget_timezone: f("budget_timezone"),
    enabled: f("enabled") === "yes",
    ...(f("default_mode") ? { default_mode: f("default_mode") } : {}),
  });
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = String(issue.path[0] ?? "");
    const message = field === "approval_timeout_seconds" ? "Approval timeout must be between 1 and 10080 minutes (7 days)." : issue.message;
    return { ok: false, code: "invalid", field, error: message.charAt(0).toUpperCase() + message.slice(1) + "." };
  }
  try {
    const r = await updateAgentSettings(db, id, parsed.data, CONSOLE_ACTOR);
    if (r.outcome === "not_found") return { ok: false, code: "not_found", error: "This agent no longer exists." };
    if (r.change_id === null) return { ok: true, agentId: id, changed: [] };
    const [change] = await listAgentChanges(db, id, 1);
    // In the form's order (jsonb keeps its own key order).
    const order = Object.keys(parsed.data);
    const changed = change && change.id === r.change_id ? Object.keys(change.changes).sort((a, b) => order.indexOf(a) - order.indexOf(b)) : [];
    return { ok: true, agentId: id, changed };
  } catch (e) {
    if (e instanceof AgentSettingsError) return { ok: false, code: "invalid", error: `Not saved: ${e.message}` };
    throw e;
  }
}
