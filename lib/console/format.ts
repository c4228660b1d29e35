// Display helpers. Money is integer micro-dollars everywhere; it becomes dollars only here, on the way to the page.
export function usd(micros: number): string {
  const dollars = micros / 1_000_000;
  if (micros !== 0 && Math.abs(dollars) < 0.01) return `$${dollars.toFixed(4)}`;
  return `$${dollars.toFixed(2)}`;
}

export function percent(part: number, whole: number): number {
  if (whole <= 0) return part > 0 ? 100 : 0;
  return Math.max(0, Math.min(100, Math.round((part / whole) * 100)));
}

export function duration(ms: number | null): string {
  if (ms === null || !Number.isFinite(ms) || ms < 0) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.round(s % 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** "3 h 12 min left", "45 s left", "overdue" — the time before an approval's auto action. */
export function timeLeft(deadlineMs: number, now: number): string {
  const left = deadlineMs - now;
  if (left <= 0) return "deadline passed";
  const mins = Math.floor(left / 60_000);
  if (mins < 1) return `${Math.ceil(left / 1000)} s left`;
  if (mins < 60) return `${mins} min left`;
  const h = Math.floor(mins / 60);
  return `${h} h ${mins % 60} min left`;
}

export function when(iso: string | null): string {
  if (!iso) return "—";
  return new Date(iso).toISOString().replace("T", " ").slice(0, 16) + " UTC";
}

export function statusLabel(status: string): string {
  return status.replace(/_/g, " ");
}

/** A result or error as readable text: `{ text }` results show their text, anything else as JSON. */
export function jsonText(value: unknown): string {
  if (value === null || value === undefined) return "";
  if (typeof value === "string") return value;
  if (typeof value === "object" && value && "text" in value && typeof (value as { text: unknown }).text === "string") {
    return (value as { text: string }).text;
  }
  return JSON.stringify(value, null, 2);
}
