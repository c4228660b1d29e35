// A task's steps over time as bars (HTML/CSS, server-rendered): where each model turn, tool call and review sat
// between the task's creation and its end, with the waits between them, each with its duration and cost.
import { duration, usd } from "@/lib/console/format";
import type { Bar } from "@/lib/console/timeline";

const KIND_LABEL: Record<Bar["kind"], string> = { model: "model turn", tool: "tool", system: "system", approval: "review", wait: "wait" };

export function Timeline({ bars, spanMs }: { bars: Bar[]; spanMs: number }) {
  const pct = (ms: number) => `${Math.min(100, Math.max(0, (ms / spanMs) * 100)).toFixed(2)}%`;
  return (
    <div className="timeline" role="list" aria-label="Steps over time" data-testid="timeline">
      <div className="tl-legend muted" aria-hidden="true">
        {(["model", "tool", "approval", "wait"] as const).map((k) => (
          <span key={k}>
            <i className={`tl-swatch ${k}`} /> {KIND_LABEL[k]}
          </span>
        ))}
        <span className="tl-span">total {duration(spanMs)}</span>
      </div>
      {bars.map((b) => (
        <div className="tl-row" role="listitem" key={b.id} data-bar={b.id} data-kind={b.kind}>
          <span className="tl-label">
            <code>{b.label}</code>
          </span>
          <span className="tl-track">
            <span
              className={`tl-bar ${b.kind}${b.status === "failed" ? " failed" : ""}`}
              style={{ left: pct(b.start), width: `max(3px, ${pct(b.duration)})` }}
              title={`${KIND_LABEL[b.kind]} ${b.label}: ${duration(b.duration)}${b.costMicros ? `, ${usd(b.costMicros)}` : ""}`}
            />
          </span>
          <span className="tl-figures num">
            {duration(b.duration)}
            {b.costMicros ? <span className="muted"> · {usd(b.costMicros)}</span> : null}
          </span>
        </div>
      ))}
    </div>
  );
}
