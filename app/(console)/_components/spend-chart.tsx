// Spend over the last 14 days, drawn on the server as SVG (no chart library, no client JavaScript): one small
// chart per agent — a bar per local day, the day's cap as a dashed line, a day over 80 % of its cap in amber —
// and spend per model as bars.
import { usd } from "@/lib/console/format";
import type { SpendHistory } from "@/lib/console/spend";

const W = 280;
const H = 110;
const PAD = { top: 8, bottom: 18, left: 4, right: 4 };

export function SpendChart({ history }: { history: SpendHistory }) {
  const maxModel = Math.max(1, ...history.models.map((m) => m.settledMicros));
  return (
    <div data-testid="spend-chart">
      <div className="charts">
        {history.agents.map((a) => {
          const top = Math.max(1, ...a.days.map((d) => Math.max(d.committedMicros, d.capMicros)));
          const plotH = H - PAD.top - PAD.bottom;
          const slot = (W - PAD.left - PAD.right) / a.days.length;
          const y = (m: number) => PAD.top + plotH - (m / top) * plotH;
          const capPath = a.days
            .map((d, i) => `${i === 0 ? "M" : "L"}${(PAD.left + i * slot).toFixed(1)},${y(d.capMicros).toFixed(1)}h${slot.toFixed(1)}`)
            .join("");
          return (
            <figure className="chart" key={a.agentId} data-agent={a.agentId}>
              <figcaption>
                <b>{a.displayName}</b> <span className="muted">{usd(a.totalMicros)} in 14 days · cap {usd(a.capMicros)}/day</span>
              </figcaption>
              <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label={`${a.displayName}: spend per day for 14 days against the daily cap`}>
                <line x1={PAD.left} x2={W - PAD.right} y1={y(0)} y2={y(0)} className="axis" />
                {a.days.map((d, i) => {
                  const h = y(0) - y(d.committedMicros);
                  const ratio = d.capMicros > 0 ? d.committedMicros / d.capMicros : 0;
                  return (
                    <rect
                      key={d.day}
                      x={PAD.left + i * slot + slot * 0.15}
                      y={y(d.committedMicros)}
                      width={slot * 0.7}
                      height={Math.max(d.committedMicros > 0 ? 1 : 0, h)}
                      className={ratio >= 1 ? "over" : ratio >= 0.8 ? "high" : "spend"}
                      data-day={d.day}
                      data-micros={d.committedMicros}
                    >
                      <title>{`${d.day}: ${usd(d.committedMicros)} of ${usd(d.capMicros)}`}</title>
                    </rect>
                  );
                })}
                <path d={capPath} className="cap" />
                <text x={PAD.left} y={H - 4} className="tick">
                  {a.days[0]?.day.slice(5)}
                </text>
                <text x={W - PAD.right} y={H - 4} className="tick" textAnchor="end">
                  {a.days[a.days.length - 1]?.day.slice(5)}
                </text>
              </svg>
            </figure>
          );
        })}
      </div>
      <h3>Per model</h3>
      {history.models.length === 0 ? (
        <p className="muted">No model calls in these 14 days.</p>
      ) : (
        <ul className="hbars" aria-label="Spend per model">
          {history.models.map((m) => (
            <li key={m.model} data-model={m.model}>
              <span className="hbar-label">
                <code>{m.model}</code> <span className="muted">{m.calls} calls</span>
              </span>
              <span className="hbar-track">
                <span className="hbar" style={{ width: `${Math.max(1, (m.settledMicros / maxModel) * 100)}%` }} />
              </span>
              <span className="num">{usd(m.settledMicros)}</span>
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}
