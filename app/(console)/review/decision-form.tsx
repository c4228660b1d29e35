"use client";
// One approval's decision: approve, edit the draft then approve (the edited text is what gets published), approve
// with changes (the box says what to change; the agent revises), or reject (the box is the feedback). After a
// decision the buttons give way to what happened.
import Link from "next/link";
import { useActionState } from "react";
import { decideAction, type DecisionState } from "../actions";

const DONE: Record<string, string> = {
  approved: "Approved — the task goes on.",
  approved_with_changes: "Approved with changes — the agent revises and goes on.",
  rejected: "Rejected — the feedback is stored and the task ends.",
};

export function DecisionForm({ approvalId, csrf, draftText }: { approvalId: string; csrf: { name: string; value: string }; draftText: string }) {
  const [state, action, pending] = useActionState<DecisionState, FormData>(decideAction, {});
  const r = state.result;
  if (r?.ok) {
    return (
      <p className="notice ok" role="status" data-outcome={r.outcome}>
        {r.edited ? "Approved with your edits — your text is published." : (DONE[r.status] ?? `Decided: ${r.status}`)} <Link href={`/tasks/${r.taskId}`}>Open the task</Link>
      </p>
    );
  }
  const settled = r && (r.outcome === "conflict" || r.outcome === "expired" || r.outcome === "not_found");
  return (
    <form action={action} aria-label="Decide">
      <input type="hidden" name={csrf.name} value={csrf.value} />
      <input type="hidden" name="approval_id" value={approvalId} />
      {r ? (
        <p className="notice error" role="alert" data-outcome={r.outcome ?? r.code}>
          {r.error} {r.taskId ? <Link href={`/tasks/${r.taskId}`}>Open the task</Link> : null}
        </p>
      ) : null}
      {settled ? null : (
        <>
          <details className="edit-draft">
            <summary>Edit the draft, then approve</summary>
            <label htmlFor={`edit-${approvalId}`}>Your version (published as is)</label>
            <textarea id={`edit-${approvalId}`} name="edited_text" defaultValue={draftText} maxLength={200_000} rows={12} className="mono" />
            <div className="actions">
              <button type="submit" name="decision" value="approve_edited" disabled={pending}>
                Approve edited draft
              </button>
            </div>
          </details>
          <label htmlFor={`notes-${approvalId}`}>Changes or feedback</label>
          <textarea id={`notes-${approvalId}`} name="notes" maxLength={20_000} placeholder="What to change (for “Approve with changes”) or why (for “Reject”)" />
          <div className="actions">
            <button type="submit" name="decision" value="approve" disabled={pending}>
              Approve
            </button>
            <button type="submit" name="decision" value="approve_with_changes" className="secondary" disabled={pending}>
              Approve with changes
            </button>
            <button type="submit" name="decision" value="reject" className="danger" disabled={pending}>
              Reject
            </button>
          </div>
        </>
      )}
    </form>
  );
}
