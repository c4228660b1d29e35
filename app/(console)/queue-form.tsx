"use client";
import Link from "next/link";
import { useActionState } from "react";
import { queueWorkAction, type FormState } from "./actions";

export function QueueForm(props: {
  agents: { id: string; displayName: string; requiresApproval: boolean }[];
  csrf: { name: string; value: string };
  formKey: string;
}) {
  const [state, action, pending] = useActionState<FormState, FormData>(queueWorkAction, {});
  return (
    <form action={action} aria-label="Queue work" className="panel">
      <input type="hidden" name={props.csrf.name} value={props.csrf.value} />
      <input type="hidden" name="idempotency_key" value={props.formKey} />
      <div className="row">
        <div>
          <label htmlFor="q-agent">Agent</label>
          <select id="q-agent" name="agent" required defaultValue={props.agents[0]?.id}>
            {props.agents.map((a) => (
              <option key={a.id} value={a.id}>
                {a.displayName}
                {a.requiresApproval ? " (always reviewed)" : ""}
              </option>
            ))}
          </select>
        </div>
      </div>
      <label htmlFor="q-prompt">What should it do?</label>
      <textarea id="q-prompt" name="prompt" required maxLength={100_000} placeholder="Summarize this week's papers on durable execution" />
      <div className="actions" style={{ alignItems: "center" }}>
        <label className="inline">
          <input type="checkbox" name="require_approval" /> Require my approval
        </label>
        <button type="submit" disabled={pending}>
          {pending ? "Queuing…" : "Queue"}
        </button>
      </div>
      {state.error ? (
        <p className="notice error" role="alert">
          {state.error}
        </p>
      ) : null}
      {state.ok && state.taskId ? (
        <p className="notice ok" role="status">
          {state.ok}: <Link href={`/tasks/${state.taskId}`}>task {state.taskId.slice(0, 8)}</Link>
        </p>
      ) : null}
    </form>
  );
}
