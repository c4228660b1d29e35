// The read API's JSON shapes (snake_case on the wire), for tests and the console.
import type { HistoryRow, RunRow } from "./store";

export interface RunView {
  run_id: string;
  function_id: string;
  status: string;
  event_id: string;
  event_name: string;
  created_at: string;
  started_at: string | null;
  ended_at: string | null;
  output: unknown;
  error: unknown;
}

export interface RunDetail extends RunView {
  event: unknown;
  parent: { run_id: string; step: string } | null;
  history: { at: string; type: string; step_id: string | null; step_name: string | null; detail: unknown }[];
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

export function runView(r: RunRow): RunView {
  return {
    run_id: r.id,
    function_id: r.function_id,
    status: r.status,
    event_id: r.event_id,
    event_name: r.event.name,
    created_at: iso(r.created_at)!,
    started_at: iso(r.started_at),
    ended_at: iso(r.ended_at),
    output: r.output ?? null,
    error: r.error ?? null,
  };
}

export function runDetail(r: RunRow, history: HistoryRow[]): RunDetail {
  return {
    ...runView(r),
    event: r.event,
    parent: r.parent,
    history: history.map((h) => ({
      at: iso(h.at)!,
      type: h.type,
      step_id: h.step ?? null,
      step_name: h.name ?? null,
      detail: h.detail ?? null,
    })),
  };
}

/** Inngest REST v1 style (`GET /v1/events/:id/runs`): capitalised statuses. */
export function v1RunView(r: RunRow) {
  const status =
    r.status === "completed" ? "Completed" : r.status === "failed" ? "Failed" : r.status === "cancelled" ? "Cancelled" : "Running";
  return {
    run_id: r.id,
    function_id: r.function_id,
    event_id: r.event_id,
    status,
    run_started_at: iso(r.started_at ?? r.created_at),
    ended_at: iso(r.ended_at),
    output: r.output ?? null,
  };
}
