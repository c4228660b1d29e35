// Display helpers. Money is integer micro-dollars everywhere; it becomes dollars only here, on the way to the page.

/**
 * Money, one rule everywhere in the console: below $1 four decimals (a hundredth of a cent: model calls cost
 * fractions of a cent), from $1 on two, always with the sign before the $ and thousands separated. So a column
 * of task costs reads $0.0300, $0.0085, $1.25 — never $0.03 beside $0.0085.
 */
export function usd(micros: number): string {
  const n = Number.isFinite(micros) ? micros : 0;
  const dollars = Math.abs(n) / 1_000_000;
  const digits = dollars < 1 ? 4 : 2;
  const text = dollars.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
  return `${n < 0 ? "−" : ""}$${text}`;
}

/** Dollars (as typed in a form) to integer micro-dollars, exactly (no float rounding); null if not an amount. */
export function parseUsd(text: string): number | null {
  const m = /^\s*\$?\s*(\d{1,9})(?:\.(\d{0,6}))?\s*$/.exec(text);
  if (!m) return null;
  return Number(m[1]) * 1_000_000 + Number((m[2] ?? "").padEnd(6, "0"));
}

/** What progress counts, said once: model turns finished out of the agent's turn limit. */
export function progressText(p: { done: number; total: number }, finished: boolean): string {
  return finished ? `${p.done} turn${p.done === 1 ? "" : "s"} (limit ${p.total})` : `${p.done} of ${p.total} turns`;
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

/**
 * How a draft waiting for review is shown. An email (a send_email approval, inngest/tool-approval.ts) is shown as the
 * plain text it will be sent as: rendered as markdown, a link's text could hide where it points, and the reviewer
 * would approve something other than what goes out. Anything else is the markdown of its text.
 */
export function draftDisplay(draft: unknown): { as: "plain" | "markdown" | "empty"; text: string } {
  const text = jsonText(draft);
  if (!text) return { as: "empty", text };
  const email = typeof draft === "object" && draft !== null && (draft as { kind?: unknown }).kind === "email";
  return { as: email ? "plain" : "markdown", text };
}

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

/** A stored error as one readable sentence: its message when it has one (the JSON stays one click away). */
export function errorText(value: unknown): string {
  if (value === null || value === undefined) return "";
  if (typeof value === "string") return value;
  if (typeof value === "object") {
    const v = value as { message?: unknown; name?: unknown; reason?: unknown };
    const msg = typeof v.message === "string" ? v.message : typeof v.reason === "string" ? v.reason : null;
    if (msg) return typeof v.name === "string" && v.name !== "Error" ? `${v.name}: ${msg}` : msg;
  }
  return JSON.stringify(value);
}
