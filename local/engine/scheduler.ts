// Timers for pending work. A binary heap ordered by due time; one clock timer armed for the earliest entry.
// Entries are removed lazily: the owner says whether a popped id is still live.
import type { Clock } from "./clock";

interface Entry {
  at: number;
  id: string;
  seq: number;
}

export class DueQueue {
  private heap: Entry[] = [];
  private seq = 0;
  private cancelTimer: (() => void) | undefined;
  private armedAt = Infinity;
  private stopped = false;

  constructor(
    private clock: Clock,
    /** Called with ids whose time has come, in due order. */
    private onDue: (ids: string[]) => void,
  ) {}

  push(id: string, at: number): void {
    const e: Entry = { at, id, seq: this.seq++ };
    const h = this.heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (less(h[p]!, e)) break;
      h[i] = h[p]!;
      i = p;
    }
    h[i] = e;
    if (at < this.armedAt) this.arm();
  }

  stop(): void {
    this.stopped = true;
    this.cancelTimer?.();
    this.cancelTimer = undefined;
  }

  private pop(): Entry | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (!top || !last || h.length === 0) return top;
    // Put the last entry at the root and sift it down.
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = -1;
      let best = last;
      if (l < h.length && less(h[l]!, best)) {
        m = l;
        best = h[l]!;
      }
      if (r < h.length && less(h[r]!, best)) {
        m = r;
        best = h[r]!;
      }
      if (m < 0) break;
      h[i] = h[m]!;
      i = m;
    }
    h[i] = last;
    return top;
  }

  private arm(): void {
    if (this.stopped) return;
    this.cancelTimer?.();
    const top = this.heap[0];
    if (!top) {
      this.armedAt = Infinity;
      this.cancelTimer = undefined;
      return;
    }
    this.armedAt = top.at;
    this.cancelTimer = this.clock.setTimer(top.at, () => this.fire());
  }

  private fire(): void {
    if (this.stopped) return;
    this.armedAt = Infinity;
    this.cancelTimer = undefined;
    const now = this.clock.now();
    const due: string[] = [];
    while (this.heap[0] && this.heap[0].at <= now) due.push(this.pop()!.id);
    this.arm();
    if (due.length) this.onDue(due);
  }
}

function less(a: Entry, b: Entry): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}
