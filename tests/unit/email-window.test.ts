// A task that needs approval must never be cut by its run's finish timeout while a person may still decide: an email
// is put to a person only when its approval window, the final draft's and a day for the rest of the run fit before
// run-task's timeouts.finish (inngest/tool-approval.ts). Before, finish was 72 h while an agent's window may be 7 days,
// and a turn's emails waited one after another.
import { describe, expect, test } from "vitest";
import { parseDuration } from "../../local/engine/durations";
import { emailWindowRefusal, RUN_FINISH, RUN_FINISH_MS } from "@/inngest/tool-approval";

const DAY = 86_400_000;
const WEEK_S = 7 * 86_400; // the largest approval_timeout_seconds an agent may have

describe("the email approval window and the run's finish timeout", () => {
  test("finish holds two of the longest approval windows and a day", () => {
    expect(parseDuration(RUN_FINISH)).toBe(RUN_FINISH_MS);
    expect(RUN_FINISH_MS).toBeGreaterThanOrEqual(2 * WEEK_S * 1000 + DAY);
  });

  test("an email is asked only while its window, the final draft's and a day fit before the finish", () => {
    const start = Date.parse("2026-11-30T00:00:00Z");
    const day = { timeoutSeconds: 86_400, runStartedAt: start };
    const week = { timeoutSeconds: WEEK_S, runStartedAt: start };
    expect(emailWindowRefusal(day, start)).toBeNull();
    expect(emailWindowRefusal(week, start)).toBeNull(); // a 7-day window still works at the start of a run
    expect(emailWindowRefusal(week, start + 10 * 60_000)).toBeNull();
    for (const [g, at] of [[day, start], [week, start], [day, start + 5 * DAY], [week, start + 12 * 3_600_000]] as const) {
      // Whenever it is asked, its decision, the final draft's and a day end before the run's finish.
      if (emailWindowRefusal(g, at) === null) expect(at + 2 * g.timeoutSeconds * 1000 + DAY).toBeLessThanOrEqual(start + RUN_FINISH_MS);
    }
    const late = emailWindowRefusal(week, start + 1 * DAY + 1);
    expect(late).toContain("NOT sent");
    expect(emailWindowRefusal(day, start + RUN_FINISH_MS - 3 * DAY + 1)).toContain("NOT sent");
    expect(emailWindowRefusal(day, start + RUN_FINISH_MS - 3 * DAY)).toBeNull();
  });
});
