"use client";
// One approval's decision: approve, approve with changes (the box says what to change), or reject (the box is the
// feedback). After a decision the buttons give way to what happened.
import Link from "next/link";
import { useActionState } from "react";
import { decideAction, type DecisionState } from "../actions";

const DONE: Record<string, string> = {
  approved: "Approved — the task goes on.",
  approved_with_changes: "Approved with changes — the agent revises and goes on.",
  rejected: "Rejected — the feedback is stored and the task ends.",
};

export function DecisionForm({ approvalId, csrf }: { approvalId: string; csrf: { name: string; value: string } }) {
  const [state, action, pending] = useActionState<DecisionState, FormData>(decideAction, {});
  const r = state.result;
  if (r?.ok) {
    return (
      <p className="notice ok" role="status" data-outcome={r.outcome}>
        {DONE[r.status] ?? `Decided: ${r.status}`} <Link href={`/tasks/${r.taskId}`}>Open the task</Link>
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
