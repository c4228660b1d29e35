// lib/coalesce.ts: what turns a burst of POST /api/tasks relays into a few batched passes. A manual clock: the
// outcomes (how many runs, who shares which) never depend on how fast the machine is.
import { describe, expect, test } from "vitest";
import { Coalescer, type CoalesceClock } from "@/lib/coalesce";

function manualClock() {
  let t = 1_000;
  const sleepers: { at: number; wake: () => void }[] = [];
  const clock: CoalesceClock = {
    now: () => t,
    sleep: (ms) => new Promise<void>((wake) => sleepers.push({ at: t + ms, wake })),
  };
  return {
    clock,
    sleepers,
    /** Moves time on and wakes whoever is due; resolves after their continuations ran. */
    async advance(ms: number) {
      t += ms;
      const due = sleepers.filter((s) => s.at <= t);
      sleepers.splice(0, sleepers.length, ...sleepers.filter((s) => s.at > t));
      for (const s of due) s.wake();
      for (let i = 0; i < 5; i++) await Promise.resolve();
    },
  };
}

describe("Coalescer", () => {
  test("a lone call runs at once; calls within the window share one run at its end; a later call runs at once", async () => {
    const c = manualClock();
    let runs = 0;
    const co = new Coalescer(async () => ++runs, 50, c.clock);

    expect(await co.call()).toBe(1); // lone: no wait
    expect(c.sleepers).toHaveLength(0);

    await c.advance(10);
    const a = co.call();
    await c.advance(10);
    const b = co.call();
    expect(a).toBe(b); // one shared run
    expect(runs).toBe(1); // not yet: it waits for the window's end
    expect(c.sleepers.map((s) => s.at)).toEqual([1_050]);

    await c.advance(30); // t = 1050: the window ends
    expect(await a).toBe(2);
    expect(runs).toBe(2);

    await c.advance(10); // within 50 ms of the shared run's start: a new window
    const d = co.call();
    expect(runs).toBe(2);
    await c.advance(40);
    expect(await d).toBe(3);

    await c.advance(500); // long after: at once again
    expect(await co.call()).toBe(4);
    expect(c.sleepers).toHaveLength(0);
  });

  test("a start by another path (started()) opens a window too", async () => {
    const c = manualClock();
    let runs = 0;
    const co = new Coalescer(async () => ++runs, 50, c.clock);
    co.started();
    await c.advance(20);
    const p = co.call();
    expect(runs).toBe(0);
    await c.advance(30);
    expect(await p).toBe(1);
  });

  test("a failed shared run rejects for every caller that joined it, and the next call is not stuck", async () => {
    const c = manualClock();
    let fail = true;
    const co = new Coalescer(async () => {
      if (fail) throw new Error("down");
      return "ok";
    }, 50, c.clock);
    await expect(co.call()).rejects.toThrow("down");
    const a = co.call();
    const b = co.call();
    a.catch(() => {});
    b.catch(() => {});
    await c.advance(50);
    await expect(a).rejects.toThrow("down");
    await expect(b).rejects.toThrow("down");
    fail = false;
    await c.advance(100);
    expect(await co.call()).toBe("ok");
  });
});
