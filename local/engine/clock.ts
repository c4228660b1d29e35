// Time source for everything the engine schedules (sleeps, wait timeouts, retries, cron, dedupe windows).
// Injectable so tests can cross a 24-hour wait in milliseconds. Request signatures deliberately do NOT use
// this clock: the SDK checks them against its own wall clock.

export interface Clock {
  now(): number;
  /** Calls `cb` once when the clock reaches `at` (ms since epoch). Returns a function that cancels it. */
  setTimer(at: number, cb: () => void): () => void;
}

/**
 * A wall-clock timer re-reads the wall clock at least this often. setTimeout counts on the monotonic clock, which
 * neither follows the wall clock when it is set forward (NTP stepping it, an operator) nor advances while the machine
 * is suspended (a laptop's lid closed over a sleep step): armed once for the whole delay, a sleep due during an
 * 8-hour suspend fired its whole delay after the resume. Re-armed in chunks, it fires within one chunk of its wall
 * time. (A clock set back is handled by the re-arm too: the timer waits for the wall time.) One wake-up per chunk,
 * for the earliest due entry only (DueQueue arms one timer).
 */
export const WALL_CHECK_MS = 30_000;

/** Wall-clock time, its timers re-armed in chunks of WALL_CHECK_MS (see above). */
export class RealClock implements Clock {
  now(): number {
    return Date.now();
  }

  setTimer(at: number, cb: () => void): () => void {
    const MAX = WALL_CHECK_MS;
    let handle: NodeJS.Timeout | undefined;
    let cancelled = false;
    const arm = () => {
      if (cancelled) return;
      const delay = at - Date.now();
      if (delay <= 0) {
        handle = setTimeout(cb, 0);
        return;
      }
      handle = setTimeout(delay > MAX ? arm : cb, Math.min(delay, MAX));
    };
    arm();
    return () => {
      cancelled = true;
      if (handle) clearTimeout(handle);
    };
  }
}

interface ManualTimer {
  at: number;
  cb: () => void;
  seq: number;
}

/**
 * A clock that only moves when told to. `advance()` fires every timer that became due, in time order, so a
 * test can jump over a 24-hour timeout and the engine reacts at once.
 */
export class ManualClock implements Clock {
  private current: number;
  private timers = new Set<ManualTimer>();
  private seq = 0;

  constructor(start: number = Date.now()) {
    this.current = start;
  }

  now(): number {
    return this.current;
  }

  setTimer(at: number, cb: () => void): () => void {
    const timer: ManualTimer = { at, cb, seq: this.seq++ };
    if (at <= this.current) {
      // Already due: fire on the next tick, never synchronously inside the caller.
      const h = setImmediate(cb);
      return () => clearImmediate(h);
    }
    this.timers.add(timer);
    return () => {
      this.timers.delete(timer);
    };
  }

  /** Moves time forward by `ms` and fires due timers. */
  advance(ms: number): void {
    this.set(this.current + ms);
  }

  /** Moves time to `t` (never backwards) and fires due timers. */
  set(t: number): void {
    if (t < this.current) throw new Error("ManualClock cannot go backwards");
    this.current = t;
    const due = [...this.timers].filter((x) => x.at <= t).sort((a, b) => a.at - b.at || a.seq - b.seq);
    for (const timer of due) {
      this.timers.delete(timer);
      timer.cb();
    }
  }
}
