"use client";
// One agent's edit form: budget, limits, model, approval rule, time zone, enabled. Saved through the same audited
// Postgres function as PATCH /api/agents/:id; the answer says what changed, or which field to fix.
import { useActionState } from "react";
import { updateAgentAction, type AgentFormState } from "../actions";

export interface AgentFormValues {
  id: string;
  dailyBudgetUsd: string;
  maxTurns: number;
  maxTokens: number;
  wallClockSeconds: number;
  concurrency: number;
  model: string;
  requiresApproval: boolean;
  approvalTimeoutMinutes: number;
  approvalAutoAction: string;
  budgetTimezone: string;
  enabled: boolean;
  defaultMode: string;
}

export function AgentForm({ agent, models, csrf }: { agent: AgentFormValues; models: string[]; csrf: { name: string; value: string } }) {
  const [state, action, pending] = useActionState<AgentFormState, FormData>(updateAgentAction, {});
  const r = state.result;
  const id = (k: string) => `${agent.id}-${k}`;
  return (
    <form action={action} aria-label={`Edit ${agent.id}`} className="agent-form">
      <input type="hidden" name={csrf.name} value={csrf.value} />
      <input type="hidden" name="agent_id" value={agent.id} />
      {r && !r.ok ? (
        <p className="notice error" role="alert" data-field={"field" in r ? r.field : undefined}>
          {r.error}
        </p>
      ) : null}
      {r?.ok ? (
        <p className="notice ok" role="status">
          {r.changed.length ? `Saved: ${r.changed.map((c) => c.replace(/_micros$/, "").replace(/_/g, " ")).join(", ")}.` : "Nothing changed."}
        </p>
      ) : null}
      <div className="form-grid">
        <Field id={id("budget")} label="Daily budget (USD)">
          <input id={id("budget")} name="daily_budget_usd" type="text" inputMode="decimal" defaultValue={agent.dailyBudgetUsd} required />
        </Field>
        <Field id={id("tz")} label="Budget time zone">
          <input id={id("tz")} name="budget_timezone" type="text" defaultValue={agent.budgetTimezone} required />
        </Field>
        <Field id={id("model")} label="Model">
          <select id={id("model")} name="model" defaultValue={agent.model}>
            {(models.includes(agent.model) ? models : [agent.model, ...models]).map((m) => (
              <option key={m} value={m}>
                {m}
              </option>
            ))}
          </select>
        </Field>
        <Field id={id("turns")} label="Max turns">
          <input id={id("turns")} name="max_turns" type="number" min={1} max={200} defaultValue={agent.maxTurns} required />
        </Field>
        <Field id={id("tokens")} label="Max tokens per call">
          <input id={id("tokens")} name="max_tokens" type="number" min={1} max={64000} defaultValue={agent.maxTokens} required />
        </Field>
        <Field id={id("wall")} label="Wall clock (s)">
          <input id={id("wall")} name="wall_clock_seconds" type="number" min={10} max={86400} defaultValue={agent.wallClockSeconds} required />
        </Field>
        <Field id={id("conc")} label="Concurrency">
          <input id={id("conc")} name="concurrency" type="number" min={1} max={100} defaultValue={agent.concurrency} required />
        </Field>
        <Field id={id("appr")} label="Every draft needs approval">
          <select id={id("appr")} name="requires_approval" defaultValue={agent.requiresApproval ? "yes" : "no"}>
            <option value="no">no (only when a task asks)</option>
            <option value="yes">yes</option>
          </select>
        </Field>
        <Field id={id("timeout")} label="Approval timeout (min)">
          <input id={id("timeout")} name="approval_timeout_minutes" type="number" min={1} max={10080} defaultValue={agent.approvalTimeoutMinutes} required />
        </Field>
        <Field id={id("auto")} label="At the deadline">
          <select id={id("auto")} name="approval_auto_action" defaultValue={agent.approvalAutoAction}>
            <option value="reject">auto-reject</option>
            <option value="approve">auto-approve</option>
          </select>
        </Field>
        <Field id={id("mode")} label="Default mode">
          <select id={id("mode")} name="default_mode" defaultValue={agent.defaultMode}>
            <option value="now">now (direct calls)</option>
            <option value="batch">batch (half price, up to 24 h)</option>
            <option value="auto">auto (batch while the deadline leaves room)</option>
          </select>
        </Field>
        <Field id={id("enabled")} label="Enabled">
          <select id={id("enabled")} name="enabled" defaultValue={agent.enabled ? "yes" : "no"}>
            <option value="yes">yes</option>
            <option value="no">no (new tasks refused)</option>
          </select>
        </Field>
      </div>
      <div className="actions">
        <button type="submit" disabled={pending}>
          Save {agent.id}
        </button>
      </div>
    </form>
  );
}

function Field({ id, label, children }: { id: string; label: string; children: React.ReactNode }) {
  return (
    <div>
      <label htmlFor={id}>{label}</label>
      {children}
    </div>
  );
}
