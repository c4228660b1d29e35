// Cron triggers. Inngest accepts standard cron with an optional "TZ=Area/City " prefix; croner does the math.
import { Cron } from "croner";

export interface CronSpec {
  pattern: string;
  timezone?: string;
}

export function parseCron(spec: string): CronSpec {
  const m = /^\s*(?:CRON_)?TZ=(\S+)\s+(.+)$/.exec(spec);
  const parsed: CronSpec = m ? { pattern: m[2]!.trim(), timezone: m[1] } : { pattern: spec.trim() };
  // Constructing validates both the pattern and the time zone.
  new Cron(parsed.pattern, { timezone: parsed.timezone, paused: true });
  return parsed;
}

/** The first fire time strictly after `after` (ms), or undefined if the schedule never fires again. */
export function nextCronTime(spec: string, after: number): number | undefined {
  const { pattern, timezone } = parseCron(spec);
  const job = new Cron(pattern, { timezone, paused: true });
  const next = job.nextRun(new Date(after));
  job.stop();
  return next ? next.getTime() : undefined;
}
