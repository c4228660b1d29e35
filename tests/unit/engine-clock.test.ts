// The engine's wall clock (local/engine/clock.ts RealClock): a timer follows the wall clock, not only the monotonic
// one setTimeout counts on — the wall clock set forward (or a suspend the monotonic clock does not count) makes a
// timer due at once, within one WALL_CHECK_MS; set back, the timer waits for its wall time. Fake timers stand for the
// two clocks: vi.setSystemTime moves the wall clock alone, vi.advanceTimersByTime the monotonic one.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { RealClock, WALL_CHECK_MS } from "../../local/engine/clock";

describe("RealClock timers across a wall-clock jump", () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: new Date("2026-11-30T03:00:00Z") });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("the wall clock jumps 2 hours forward: a timer due in 1 hour fires within one check, not an hour later", () => {
    const clock = new RealClock();
    let fired = 0;
    clock.setTimer(Date.now() + 3_600_000, () => fired++);
    vi.setSystemTime(Date.now() + 2 * 3_600_000); // the wall clock alone
    vi.advanceTimersByTime(WALL_CHECK_MS + 1); // the check, then its setTimeout(cb, 0) (1 ms, as in Node)
    expect(fired).toBe(1);
  });

  it("the wall clock jumps 2 hours back: a timer due in 1 hour waits for its wall time", () => {
    const clock = new RealClock();
    let fired = 0;
    const at = Date.now() + 3_600_000;
    clock.setTimer(at, () => fired++);
    vi.setSystemTime(Date.now() - 2 * 3_600_000);
    vi.advanceTimersByTime(3_600_000 + WALL_CHECK_MS); // an hour of monotonic time: the wall clock is still 1 h short
    expect(fired).toBe(0);
    vi.advanceTimersByTime(2 * 3_600_000); // at its wall time
    expect(fired).toBe(1);
  });

  it("no jump: fires at its time, once; cancelled: never", () => {
    const clock = new RealClock();
    let fired = 0;
    clock.setTimer(Date.now() + 95_000, () => fired++);
    let other = 0;
    const cancel = clock.setTimer(Date.now() + 95_000, () => other++);
    vi.advanceTimersByTime(94_999);
    expect(fired).toBe(0);
    cancel();
    vi.advanceTimersByTime(1);
    expect(fired).toBe(1);
    vi.advanceTimersByTime(10 * WALL_CHECK_MS);
    expect(fired).toBe(1);
    expect(other).toBe(0);
  });
});
