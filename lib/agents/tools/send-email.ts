// send_email: the outreach agent's tool, through the Resend HTTP API (POST {RESEND_BASE_URL}/emails).
//
// Side-effecting, so it runs through the ledger (lib/side-effects.ts): one email per (task, tool call) however often
// the step is retried. Every attempt also sends the ledger key as Resend's `Idempotency-Key`, which covers the one
// window the ledger cannot: a run that crashed after Resend accepted the email but before the ledger recorded it,
// whose claim is re-taken when its lease expires. Resend answers such a repeat with the first email's id.
//
// Without RESEND_API_KEY it is a dry run: nothing leaves the machine, the ledger records what would have been sent
// (its `request` column holds the full email), and the result says so plainly.
//
// Resend is behind its circuit breaker (`resend`, shared with the notification emails): while it is open nothing is
// sent and the call throws CircuitOpenError, which the agent loop turns into a durable wait for the next probe (no
// attempt burned, the ledger claim released); the failure that opens it does the same.
import { z } from "zod";
import { acquireBreaker, CircuitOpenError, dependency, recordBreaker } from "@/lib/breakers";
import { sideEffectKey } from "@/lib/side-effects";
import { defineTool, ToolError, TransientToolError, type ToolContext } from "./types";

export const MAX_RECIPIENTS = 10;

export const SendEmailInput = z.object({
  to: z
    .array(z.email())
    .min(1)
    .max(MAX_RECIPIENTS)
    .refine((to) => new Set(to.map((a) => a.toLowerCase())).size === to.length, "must not repeat an address")
    .describe(`Recipient email addresses (1 to ${MAX_RECIPIENTS}).`),
  subject: z
    .string()
    .trim()
    .min(1)
    .max(300)
    .regex(/^[^\r\n]*$/, "must be a single line")
    .describe("Subject line."),
  text: z.string().min(1).max(50_000).describe("Plain-text body."),
});

export type SendEmailResult =
  | { sent: true; dry_run: false; id: string; from: string; to: string[]; subject: string }
  | { sent: false; dry_run: true; from: string; to: string[]; subject: string; message: string };

export const sendEmailTool = defineTool({
  name: "send_email",
  description:
    "Send a plain-text email from the organisation's outreach address. Each call sends one email (retries never " +
    "send it twice). Only send what the task asks for; never invent facts or recipients.",
  input: SendEmailInput,
  sideEffect: true,
  auditRecord: (input, ctx) => ({ from: ctx.config.email.from, to: input.to, subject: input.subject, text: input.text }),
  async run(input, ctx): Promise<SendEmailResult> {
    const cfg = ctx.config.email;
    if (input.to.length > cfg.maxRecipients) {
      throw new ToolError(`to: at most ${cfg.maxRecipients} recipients per email, got ${input.to.length}`);
    }
    const email = { from: cfg.from, to: input.to, subject: input.subject, text: input.text };

    if (!cfg.apiKey) {
      return {
        sent: false,
        dry_run: true,
        from: email.from,
        to: email.to,
        subject: email.subject,
        message:
          "DRY RUN: no email was sent because RESEND_API_KEY is not set. The email was recorded in the " +
          "side-effect ledger instead.",
      };
    }

    // The daily cap on mail that leaves, whatever the model was told (NIGHTSHIFT_EMAIL_DAILY_MAX; Postgres decides).
    const quota = await reserveEmailQuota(ctx, input.to.length, cfg.dailyMax);
    if (!quota.allowed) {
      throw new ToolError(
        `The email was NOT sent: the daily cap of ${cfg.dailyMax} recipients in 24 hours (NIGHTSHIFT_EMAIL_DAILY_MAX) is reached ` +
          `(${quota.used} used). Do not retry today.`,
      );
    }

    const dep = dependency.email();
    const now = ctx.now ?? new Date();
    // The breaker is a helper, never a new way to fail: if it cannot be asked, the email goes out without it.
    const gate = await acquireBreaker(ctx.db, dep, now).catch((err: unknown) => {
      console.warn(`[send_email] breaker ${dep} unavailable: ${(err as Error).message}`);
      return null;
    });
    if (gate?.role === "refused") throw new CircuitOpenError(dep, gate.retryAt);
    /** An outage: count it, and once the breaker is open, wait for its probe instead of spending a retry. */
    const outage = async (err: TransientToolError): Promise<never> => {
      const b = await recordBreaker(ctx.db, dep, { success: false, outage: true, error: err.message.slice(0, 300) }, now).catch(() => null);
      if (b && b.state !== "closed" && b.nextProbeAt) throw new CircuitOpenError(dep, b.nextProbeAt);
      throw err;
    };

    const deadline = AbortSignal.timeout(cfg.timeoutMs);
    const signal = ctx.signal ? AbortSignal.any([deadline, ctx.signal]) : deadline;
    let res: Response;
    try {
      res = await fetch(`${cfg.baseUrl}/emails`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${cfg.apiKey}`,
          "content-type": "application/json",
          "idempotency-key": sideEffectKey(ctx.taskId, ctx.toolUseId),
          "user-agent": "nightshift",
        },
        body: JSON.stringify(email),
        signal,
      });
    } catch (err) {
      // Unknown whether Resend got it; retrying is safe because the retry carries the same Idempotency-Key.
      return outage(new TransientToolError(`Resend unreachable: ${(err as Error).message}`, undefined, { cause: err }));
    }
    const body = await res.text().catch(() => "");
    let parsed: { id?: unknown; name?: unknown; message?: unknown } = {};
    try {
      parsed = JSON.parse(body) as typeof parsed;
    } catch {
      // not JSON; handled below
    }

    if (res.ok) {
      if (typeof parsed.id !== "string") {
        throw new TransientToolError(`Resend answered ${res.status} without an email id`);
      }
      await recordBreaker(ctx.db, dep, { success: true }, now).catch(() => null);
      return { sent: true, dry_run: false, id: parsed.id, from: email.from, to: email.to, subject: email.subject };
    }

    const detail = `${res.status}${typeof parsed.name === "string" ? ` ${parsed.name}` : ""}: ${
      typeof parsed.message === "string" ? parsed.message : body.slice(0, 300)
    }`;
    if (res.status === 429 || res.status >= 500 || parsed.name === "concurrent_idempotent_requests") {
      const retryAfter = Number(res.headers.get("retry-after"));
      const err = new TransientToolError(
        `Resend is unavailable (${detail})`,
        Number.isFinite(retryAfter) && retryAfter > 0 ? Math.min(retryAfter, 300) * 1000 : undefined,
      );
      if (res.status >= 500) return outage(err);
      // Pacing (429) or a concurrent duplicate: not an outage; Resend answered.
      await recordBreaker(ctx.db, dep, { success: false, outage: false, error: err.message.slice(0, 300) }, now).catch(() => null);
      throw err;
    }
    await recordBreaker(ctx.db, dep, { success: false, outage: false, error: `Resend refused the email (${detail})`.slice(0, 300) }, now).catch(() => null);
    // A permanent refusal (invalid address, unverified domain, bad key): recorded as this call's result, so a
    // retried step reports it again instead of resending.
    throw new ToolError(`Resend refused the email (${detail})`);
  },
});

/** Counts this email's recipients against the daily cap, once per (task, tool call): see the migration. */
async function reserveEmailQuota(ctx: ToolContext, recipients: number, dailyMax: number): Promise<{ allowed: boolean; used: number }> {
  const { data, error } = await ctx.db.rpc("reserve_email_quota", {
    p_task_id: ctx.taskId,
    p_tool_use_id: ctx.toolUseId,
    p_recipients: recipients,
    p_daily_max: dailyMax,
  });
  // Transient: the step is retried (the ledger releases its claim first); nothing was sent.
  if (error) throw new TransientToolError(`email quota check failed: ${error.message}`);
  const row = (data as { allowed: boolean; used: number | string }[] | null)?.[0];
  if (!row) throw new TransientToolError("email quota check returned nothing");
  return { allowed: row.allowed === true, used: Number(row.used) };
}
