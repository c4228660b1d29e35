// In a task that needs a person's approval (the task asked for it, or its agent always does), nothing leaves the
// machine before that person said yes: each send_email call becomes an approval of its own — the email exactly as
// it would go out (To, Subject, body) — and only an approved email is sent. Before, the approval gated only the
// task's final answer, after the tool loop had already sent every email the model (or a page, a task input, a prompt
// injection it read) asked for.
//
//   tool-N-send_email-hold              step.run: give the agent's slot back while a person decides
//   approval-email_N_k-1-…              awaitApproval (inngest/approval.ts): request, wait + publish, resolve
//   tool-N-send_email-edited            step.run (only after an edit): the reviewer's text, read back as the email
//
// The decision in effect: a person's approve → the email is sent (a reviewer's edit of the text is what is sent,
// recipients and subject included); approve with changes, reject, or no decision by the deadline → nothing is sent and
// the model is told why (the reviewer's notes included), so it can revise and call again or finish. The deadline
// never sends, whatever the agent's auto action (which applies to its final draft only): the approval is requested
// with autoAction "reject" (the console shows it `expired`), and an approval decided by `timeout` is refused anyway.
// An email too big for a reviewable draft (approvals.draft's 64 KB check, in bytes) is not asked about: the model is
// told to write a shorter one (before, the database refused the draft and the whole task failed).
import type Anthropic from "@anthropic-ai/sdk";
import type { GetStepTools, Inngest } from "inngest";
import { awaitApproval } from "@/inngest/approval";
import { releaseSlot } from "@/lib/agents/slots";
import { SendEmailInput } from "@/lib/agents/tools/send-email";
import { approvalEditedText, draftBytes, MAX_DRAFT_BYTES } from "@/lib/approvals";
import { db } from "@/lib/db/server";
import { notify } from "@/lib/notifications";

type StepTools = GetStepTools<Inngest.Any>;

/** Tools whose calls leave the machine: in a task that needs approval, each call waits for a person first. */
export const TOOLS_NEEDING_APPROVAL: ReadonlySet<string> = new Set(["send_email"]);

export interface ToolGate {
  agentId: string;
  prompt: string;
  timeoutSeconds: number;
}

/** An email as the reviewer sees it (and may edit it): header lines, a blank line, the body. */
export function emailDraftText(e: { to: string[]; subject: string; text: string }): string {
  return `To: ${e.to.join(", ")}\nSubject: ${e.subject}\n\n${e.text}`;
}

/** A reviewer's edited email read back (same shape as emailDraftText), or null if it is not one. */
export function parseEmailDraft(text: string): { to: string[]; subject: string; text: string } | null {
  const m = /^To:[ \t]*([^\n]*)\r?\nSubject:[ \t]*([^\n]*?)\r?\n\r?\n([\s\S]*)$/.exec(text.replace(/^\s+/, ""));
  if (!m) return null;
  const parsed = SendEmailInput.safeParse({ to: m[1]!.split(",").map((a) => a.trim()).filter(Boolean), subject: m[2]!.trim(), text: m[3]! });
  return parsed.success ? parsed.data : null;
}

/**
 * Asks a person before a call that leaves the machine. Returns the input to run the call with (the model's, or the
 * reviewer's edit), or the tool_result the model gets instead when nothing may be sent. Input the tool's schema
 * refuses is passed through untouched: the tool step answers it with the schema's error and nothing leaves.
 */
export async function approveToolCall(
  step: StepTools,
  o: { taskId: string; turn: number; stepId: string; k: number; call: Anthropic.ToolUseBlock; gate: ToolGate },
): Promise<{ input: unknown; waitedMs: number; decidedAt: number } | { result: Anthropic.ToolResultBlockParam; waitedMs: number; decidedAt: number }> {
  const email = SendEmailInput.safeParse(o.call.input);
  if (!email.success) return { input: o.call.input, waitedMs: 0, decidedAt: 0 };
  const { taskId, gate } = o;
  const draft = { text: emailDraftText(email.data), kind: "email", agent: gate.agentId, prompt: gate.prompt.slice(0, 2000) };
  if (draftBytes(draft) > MAX_DRAFT_BYTES) {
    const content =
      `The email was NOT sent: it is too long to be reviewed (${draftBytes(draft)} bytes as the reviewer would see it, ` +
      `with the task's prompt; at most ${MAX_DRAFT_BYTES}). Write a shorter email and call send_email again.`;
    return { result: { type: "tool_result", tool_use_id: o.call.id, content, is_error: true }, waitedMs: 0, decidedAt: 0 };
  }

  const held = await step.run(`${o.stepId}-hold`, async () => {
    await releaseSlot(db(), taskId); // a task waiting for a person holds none of its agent's slots
    return { at: Date.now() };
  });
  const approval = await awaitApproval(step, {
    taskId,
    stage: `email_${o.turn}_${o.k}`,
    revision: 1,
    draft,
    timeoutSeconds: gate.timeoutSeconds,
    autoAction: "reject", // only a person's approve sends an email, never the deadline (the header)
    onVisible: async (a) => {
      await notify(db(), {
        kind: "approval_requested",
        dedupeKey: `approval_requested:${a.id}`,
        title: `A ${gate.agentId} email waits for your review`,
        body: `To ${email.data.to.join(", ")}: ${email.data.subject.slice(0, 200)} — decide by ${a.expires_at}, or it is not sent.`,
        agentId: gate.agentId,
        taskId,
        link: "/review",
      });
    },
  });
  // The decision itself moved the task back to running (decide_approval / expire_approval, once none is pending).
  const edited = approval.edited ? await step.run(`${o.stepId}-edited`, () => approvalEditedText(db(), approval.approval_id)) : null;
  const decidedAt = Date.parse(approval.decided_at);
  const waitedMs = Math.max(0, decidedAt - held.at);

  const refuse = (content: string) => ({
    result: { type: "tool_result" as const, tool_use_id: o.call.id, content, is_error: true as const },
    waitedMs,
    decidedAt,
  });
  const notes = approval.notes ? ` The reviewer's notes: ${approval.notes}` : "";
  // A timeout never sends, even an approval recorded `approved` by an auto action of "approve" (one requested before
  // this rule, its row already in the database).
  if (approval.decided_via === "timeout") return refuse("The email was NOT sent: nobody approved it before the deadline.");
  if (approval.decision === "reject") return refuse(`The email was NOT sent: the reviewer rejected it.${notes}`);
  if (approval.decision === "approve_with_changes") {
    return refuse(`The email was NOT sent: the reviewer asked for changes first.${notes} Call send_email again with the revised email if it should still go out.`);
  }
  if (edited !== null) {
    const edit = parseEmailDraft(edited);
    if (!edit) return refuse("The email was NOT sent: the reviewer's edit could not be read as an email (To:, Subject:, a blank line, then the text).");
    return { input: edit, waitedMs, decidedAt };
  }
  return { input: email.data, waitedMs, decidedAt };
}
