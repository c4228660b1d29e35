// Cron math for schedules, through croner (the project's cron library, also used by the local engine): validation,
// the next firing in an IANA time zone, and the plan for a due schedule. Daylight saving is croner's: a local time
// that does not exist on a spring-forward day (02:30) fires once, at the first valid minute after it (03:00); a
// local time that occurs twice on a fall-back day fires once, at its first occurrence.
import { Cron } from "croner";

/** The error text for a bad expression, or null when croner accepts it. */
export function cronProblem(expression: string): string | null {
  try {
    const c = new Cron(expression, { paused: true });
    if (!c.nextRun(new Date())) return "never fires";
    return null;
  } catch (err) {
    return (err as Error).message.replace(/^CronPattern: /, "");
  }
}

/** True for an IANA zone name the runtime knows (Europe/Berlin, UTC). */
export function isTimeZone(tz: string): boolean {
  if (!tz || tz.length > 64) return false;
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

function cron(expression: string, timezone: string): Cron {
  return new Cron(expression, { timezone, paused: true });
}

/** The first firing strictly after `after`, or null if the expression never fires again. */
export function nextFiring(expression: string, timezone: string, after: Date): Date | null {
  return cron(expression, timezone).nextRun(after);
}

export interface FiringPlan {
  /** The firing that runs: the latest one due (after downtime, the missed ones before it are skipped). */
  scheduledFor: Date;
  /** Due firings folded into this one, and the first of them. */
  skipped: number;
  skippedFrom: Date | null;
  /** The next firing after `now`. */
  next: Date;
}

/** Upper bound on missed firings walked one by one (a minute schedule down for 69 days). */
const MAX_WALK = 100_000;

/**
 * What a dispatcher at `now` does with a schedule whose next_run_at is `due`: null while it is not due yet;
 * otherwise run the latest due firing once, skip the earlier ones (counted), and move on to the next after `now`.
 */
export function planFiring(expression: string, timezone: string, due: Date, now: Date): FiringPlan | null {
  if (due.getTime() > now.getTime()) return null;
  const c = cron(expression, timezone);
  let scheduledFor = due;
  let skipped = 0;
  let skippedFrom: Date | null = null;
  for (let i = 0; i < MAX_WALK; i++) {
    const n = c.nextRun(scheduledFor);
    if (!n || n.getTime() > now.getTime()) break;
    skippedFrom ??= scheduledFor;
    skipped += 1;
    scheduledFor = n;
  }
  const next = c.nextRun(now) ?? new Date("9999-12-31T00:00:00Z");
  return { scheduledFor, skipped, skippedFrom, next };
}

/** The local calendar date (YYYY-MM-DD) of an instant in a zone. */
export function localDate(at: Date, timezone: string): string {
  return new Intl.DateTimeFormat("en-CA", { timeZone: timezone, year: "numeric", month: "2-digit", day: "2-digit" }).format(at);
}
