"use client";
// One dead letter's actions: Replay (optionally with an edited prompt or another agent) and Discard (with a note).
// After an action the forms give way to what happened, with a link to the new task.
import Link from "next/link";
import { useActionState } from "react";
import { discardAction, replayAction, replaySelectedAction, type FailedState } from "./actions";

type Csrf = { name: string; value: string };

function Outcome({ state }: { state: FailedState }) {
  const r = state.result;
  if (!r) return null;
  if (!r.ok) {
    return (
      <p className="notice error" role="alert" data-outcome={r.code}>
        {r.error}
      </p>
    );
  }
  return (
    <p className="notice ok" role="status" data-outcome={r.message.toLowerCase().startsWith("replayed") ? "replayed" : "discarded"}>
      {r.message}
      {r.taskIds.length === 1 ? (
        <>
          {" "}
          as <Link href={`/tasks/${r.taskIds[0]}`}>task {r.taskIds[0]!.slice(0, 8)}</Link>
        </>
      ) : null}
      .
    </p>
  );
}

export function EntryForms({ id, prompt, agent, agents, formKey, csrf }: { id: string; prompt: string; agent: string; agents: string[]; formKey: string; csrf: Csrf }) {
  const [replayed, replay, replaying] = useActionState<FailedState, FormData>(replayAction, {});
  const [discarded, discard, discarding] = useActionState<FailedState, FormData>(discardAction, {});
  if (replayed.result?.ok) return <Outcome state={replayed} />;
  if (discarded.result?.ok) return <Outcome state={discarded} />;
  return (
    <>
      <Outcome state={replayed} />
      <Outcome state={discarded} />
      <details>
        <summary>Replay or discard</summary>
        <form action={replay} aria-label="Replay">
          <input type="hidden" name={csrf.name} value={csrf.value} />
          <input type="hidden" name="dead_letter_id" value={id} />
          <input type="hidden" name="idempotency_key" value={formKey} />
          <label htmlFor={`prompt-${id}`}>Prompt (edit before replaying, or keep it)</label>
          <textarea id={`prompt-${id}`} name="prompt" defaultValue={prompt} maxLength={100_000} />
          <label htmlFor={`agent-${id}`}>Agent</label>
          <select id={`agent-${id}`} name="agent" defaultValue={agent}>
            {agents.map((a) => (
              <option key={a} value={a}>
                {a}
              </option>
            ))}
          </select>
          <div className="actions">
            <button type="submit" disabled={replaying}>
              Replay
            </button>
          </div>
        </form>
        <form action={discard} aria-label="Discard">
          <input type="hidden" name={csrf.name} value={csrf.value} />
          <input type="hidden" name="dead_letter_id" value={id} />
          <label htmlFor={`note-${id}`}>Note (why it is discarded)</label>
          <input id={`note-${id}`} name="note" maxLength={2000} />
          <div className="actions">
            <button type="submit" className="danger" disabled={discarding}>
              Discard
            </button>
          </div>
        </form>
      </details>
    </>
  );
}

/** "Replay all": the checkboxes in the entries belong to this form (form="replay-selected"). */
export function ReplaySelected({ formKey, csrf, count }: { formKey: string; csrf: Csrf; count: number }) {
  const [state, action, pending] = useActionState<FailedState, FormData>(replaySelectedAction, {});
  return (
    <form id="replay-selected" action={action} aria-label="Replay selected">
      <input type="hidden" name={csrf.name} value={csrf.value} />
      <input type="hidden" name="idempotency_key" value={formKey} />
      <Outcome state={state} />
      <div className="actions">
        <button type="submit" disabled={pending || count === 0}>
          Replay selected
        </button>
      </div>
    </form>
  );
}
