// A task's timeline as bars: each step where it ran (model turns, tool calls), the reviews it waited for, and the
// gaps between them (waiting: for a budget window, a concurrency slot, a batch, a retry). Pure: the task page draws
// it as server-rendered SVG.
export type BarKind = "model" | "tool" | "system" | "approval" | "wait";

export interface Bar {
  id: string;
  label: string;
  kind: BarKind;
  /** ms from the timeline's start */
  start: number;
  /** ms; 0 for a still-open bar with no end yet is drawn to `end` of the timeline */
  duration: number;
  costMicros: number;
  status: string;
}

export interface TimelineStep {
  stepId: string;
  kind: string;
  status: string;
  startedAt: string;
  finishedAt: string | null;
  durationMs: number | null;
  costMicros: number;
}

export interface TimelineApproval {
  id: string;
  stage: string;
  revision: number;
  status: string;
  requested_at: string;
  decided_at: string | null;
}

/** Gaps shorter than this are bookkeeping between steps, not a wait worth a bar. */
export const MIN_WAIT_MS = 1_000;

export function buildTimeline(
  task: { created_at: string; started_at: string | null; finished_at: string | null },
  steps: TimelineStep[],
  approvals: TimelineApproval[],
  now: number,
): { bars: Bar[]; spanMs: number } {
  const t0 = Date.parse(task.created_at);
  const end = task.finished_at ? Date.parse(task.finished_at) : now;
  const at = (iso: string) => Date.parse(iso) - t0;
  const bars: Bar[] = [];

  for (const s of steps) {
    const finished = s.finishedAt ? at(s.finishedAt) : end - t0;
    // A step recorded only on completion has started ≈ finished: its own measured duration places it.
    const duration = s.durationMs ?? Math.max(0, finished - at(s.startedAt));
    const start = s.finishedAt ? Math.max(0, finished - duration) : at(s.startedAt);
    bars.push({
      id: s.stepId,
      label: s.stepId,
      kind: s.kind === "model" || s.kind === "tool" ? s.kind : "system",
      start,
      duration,
      costMicros: s.costMicros,
      status: s.status,
    });
  }
  for (const a of approvals) {
    const start = at(a.requested_at);
    const stop = a.decided_at ? at(a.decided_at) : end - t0;
    bars.push({
      id: `approval-${a.id}`,
      label: `review ${a.stage}${a.revision > 1 ? ` #${a.revision}` : ""}`,
      kind: "approval",
      start,
      duration: Math.max(0, stop - start),
      costMicros: 0,
      status: a.status,
    });
  }
  bars.sort((x, y) => x.start - y.start || x.id.localeCompare(y.id));

  // Waits: the stretches no bar covers, from the task's creation to its end (or now).
  const waits: Bar[] = [];
  let covered = 0;
  for (const b of bars) {
    if (b.start - covered >= MIN_WAIT_MS) waits.push(wait(waits.length, covered, b.start - covered, covered === 0 ? "queued" : "waiting"));
    covered = Math.max(covered, b.start + b.duration);
  }
  if (end - t0 - covered >= MIN_WAIT_MS) waits.push(wait(waits.length, covered, end - t0 - covered, task.finished_at ? "finishing" : "waiting"));

  const all = [...bars, ...waits].sort((x, y) => x.start - y.start || x.id.localeCompare(y.id));
  const spanMs = Math.max(1, end - t0, ...all.map((b) => b.start + b.duration));
  return { bars: all, spanMs };
}

function wait(i: number, start: number, duration: number, label: string): Bar {
  return { id: `wait-${i + 1}`, label, kind: "wait", start, duration, costMicros: 0, status: "completed" };
}
