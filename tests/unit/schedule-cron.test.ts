// Cron math for schedules (croner): daylight saving and catch-up planning, on fixed instants.
import { describe, expect, test } from "vitest";
import { cronProblem, isTimeZone, nextFiring, planFiring } from "@/lib/schedules/cron";

const NY = "America/New_York";
const iso = (d: Date | null | undefined) => d?.toISOString();

describe("schedule cron math", () => {
  test("a 02:30 schedule fires once on the spring-forward day (at 03:00 local) and normally around it", () => {
    const firings: string[] = [];
    let at = new Date("2027-03-12T12:00:00Z");
    for (let i = 0; i < 4; i++) {
      at = nextFiring("30 2 * * *", NY, at)!;
      firings.push(iso(at)!);
    }
    expect(firings).toEqual([
      "2027-03-13T07:30:00.000Z", // 02:30 EST
      "2027-03-14T07:00:00.000Z", // 02:30 does not exist: once, at 03:00 EDT
      "2027-03-15T06:30:00.000Z", // 02:30 EDT
      "2027-03-16T06:30:00.000Z",
    ]);
  });

  test("a 01:30 schedule fires once on the fall-back day, though 01:30 happens twice", () => {
    const firings: string[] = [];
    let at = new Date("2027-11-06T00:00:00Z");
    for (let i = 0; i < 3; i++) {
      at = nextFiring("30 1 * * *", NY, at)!;
      firings.push(iso(at)!);
    }
    expect(firings).toEqual(["2027-11-06T05:30:00.000Z", "2027-11-07T05:30:00.000Z", "2027-11-08T06:30:00.000Z"]);
  });

  test("after downtime the latest missed firing runs once and the others are counted as skipped", () => {
    // Due at 02:00 on the 1st; the dispatcher comes back on the 4th at 10:00.
    const plan = planFiring("0 2 * * *", "UTC", new Date("2030-01-01T02:00:00Z"), new Date("2030-01-04T10:00:00Z"))!;
    expect(iso(plan.scheduledFor)).toBe("2030-01-04T02:00:00.000Z");
    expect(plan.skipped).toBe(3);
    expect(iso(plan.skippedFrom)).toBe("2030-01-01T02:00:00.000Z");
    expect(iso(plan.next)).toBe("2030-01-05T02:00:00.000Z");
    // On time: nothing skipped; not yet due: no plan.
    const onTime = planFiring("0 2 * * *", "UTC", new Date("2030-01-01T02:00:00Z"), new Date("2030-01-01T02:00:30Z"))!;
    expect({ s: onTime.skipped, f: iso(onTime.scheduledFor) }).toEqual({ s: 0, f: "2030-01-01T02:00:00.000Z" });
    expect(planFiring("0 2 * * *", "UTC", new Date("2030-01-01T02:00:00Z"), new Date("2030-01-01T01:59:00Z"))).toBeNull();
  });

  test("invalid expressions and zones are named", () => {
    expect(cronProblem("61 * * * *")).toMatch(/minute/);
    expect(cronProblem("0 2 * * *")).toBeNull();
    expect(isTimeZone("Europe/Berlin")).toBe(true);
    expect(isTimeZone("Mars/Base")).toBe(false);
  });
});
