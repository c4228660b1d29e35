// Inngest time strings: the SDK sends sleeps and timeouts as "1w2d3h4m5s" (its timeStr), users write config
// values such as "10m" or "1h30m", and sleepUntil sends an ISO timestamp.

const UNITS: Record<string, number> = {
  ms: 1,
  s: 1_000,
  sec: 1_000,
  second: 1_000,
  seconds: 1_000,
  m: 60_000,
  min: 60_000,
  minute: 60_000,
  minutes: 60_000,
  h: 3_600_000,
  hr: 3_600_000,
  hour: 3_600_000,
  hours: 3_600_000,
  d: 86_400_000,
  day: 86_400_000,
  days: 86_400_000,
  w: 604_800_000,
  week: 604_800_000,
  weeks: 604_800_000,
};

/** Parses a duration string into milliseconds; throws on anything it does not fully understand. */
export function parseDuration(input: string): number {
  const s = input.trim().toLowerCase();
  if (!s) throw new Error(`empty duration`);
  if (/^\d+(\.\d+)?$/.test(s)) return Number(s); // bare number = milliseconds
  const re = /(\d+(?:\.\d+)?)\s*([a-z]+)\s*/gy;
  let total = 0;
  let consumed = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(s))) {
    const unit = UNITS[m[2] ?? ""];
    if (unit === undefined) throw new Error(`unknown duration unit "${m[2]}" in "${input}"`);
    total += Number(m[1]) * unit;
    consumed = re.lastIndex;
  }
  if (consumed !== s.length) throw new Error(`invalid duration "${input}"`);
  return Math.round(total);
}

/** A Sleep op's `name`: either a duration ("1h") or an absolute ISO time (sleepUntil). Returns the wake time. */
export function sleepTarget(name: string, now: number): number {
  if (/^\d{4}-\d{2}-\d{2}/.test(name)) {
    const t = Date.parse(name);
    if (Number.isNaN(t)) throw new Error(`invalid sleepUntil time "${name}"`);
    return t;
  }
  return now + parseDuration(name);
}

/**
 * A `retry-after` header: seconds, an ISO date (RetryAfterError with a Date) or an HTTP date.
 * Returns a delay in ms, or undefined when absent or unreadable.
 */
export function parseRetryAfter(value: string | null, now: number): number | undefined {
  if (!value) return undefined;
  const v = value.trim();
  if (/^\d+(\.\d+)?$/.test(v)) return Number(v) * 1000;
  const t = Date.parse(v);
  if (!Number.isNaN(t)) return Math.max(0, t - now);
  try {
    return parseDuration(v);
  } catch {
    return undefined;
  }
}

/** Inngest's retry schedule (pkg/backoff): 15s, 30s, 1m, 2m, 5m, 10m, 20m, 40m, 1h, 2h, plus up to 30 s jitter. */
const BACKOFF_TABLE = [15e3, 30e3, 60e3, 120e3, 300e3, 600e3, 1200e3, 2400e3, 3600e3, 7200e3];

export function defaultBackoff(attempt: number): number {
  return BACKOFF_TABLE[Math.min(attempt, BACKOFF_TABLE.length - 1)]! + Math.floor(Math.random() * 30_000);
}
