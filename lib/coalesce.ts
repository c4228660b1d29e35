// Coalescing of repeated calls to one piece of batched work (the outbox relay after each POST /api/tasks): a call
// runs the work at once when it last began more than `gapMs` ago — a lone call is never delayed — and otherwise joins
// one shared run scheduled `gapMs` after that last start, which every call arriving meanwhile shares. So N calls
// within a window cost one run at the window's end instead of N, and the added delay is at most `gapMs`.
export interface CoalesceClock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

const realClock: CoalesceClock = {
  now: () => performance.now(),
  sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
};

export class Coalescer<T> {
  private lastStart = -Infinity;
  private shared: Promise<T> | undefined;

  constructor(
    private readonly run: () => Promise<T>,
    private readonly gapMs: number,
    private readonly clock: CoalesceClock = realClock,
  ) {}

  /** The work began now by another path (e.g. a background kick): calls within gapMs of it coalesce too. */
  started(): void {
    this.lastStart = this.clock.now();
  }

  /** Runs the work now, or joins the shared run at the window's end. Resolves with the run it took part in. */
  call(): Promise<T> {
    if (this.shared) return this.shared;
    const wait = this.lastStart + this.gapMs - this.clock.now();
    if (wait <= 0) {
      this.started();
      return this.run();
    }
    const shared = this.clock.sleep(wait).then(() => {
      this.shared = undefined;
      this.started();
      return this.run();
    });
    this.shared = shared;
    return shared;
  }
}
