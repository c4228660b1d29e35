// A lane of outbox relay passes (inngest/outbox-relay.ts has two: new work, and wake-ups of runs under way). Generic
// over the pass's round so it can be tested on its own (tests/unit/relay-lane.test.ts); lib/ holds no Inngest here.
import type { RelayResult } from "@/lib/outbox";

/**
 * Passes of one kind, at most `maxPasses` at a time per process: a caller that arrives while they run joins them, and
 * a pass runs `round` once more after, so what the caller recorded is covered; a burst of kicks thus becomes a few
 * batched sends. run() resolves once every pass running at the call has ended (one of them started after the call,
 * or runs once more).
 */
export class RelayLane {
  private readonly passes = new Set<Promise<RelayResult>>();
  private rerun = false;

  constructor(
    private readonly maxPasses: number,
    private readonly round: () => Promise<RelayResult>,
  ) {}

  run(): Promise<RelayResult> {
    if (this.passes.size < this.maxPasses) this.start();
    else this.rerun = true;
    return Promise.all([...this.passes]).then((rs) => rs.reduce((a, r) => ({ sent: a.sent + r.sent, failed: a.failed + r.failed }), { sent: 0, failed: 0 }));
  }

  private start(): void {
    let pass: Promise<RelayResult> | undefined = undefined;
    pass = (async (): Promise<RelayResult> => {
      const total: RelayResult = { sent: 0, failed: 0 };
      try {
        do {
          this.rerun = false;
          const r = await this.round();
          total.sent += r.sent;
          total.failed += r.failed;
          if (r.failed > 0) break;
        } while (this.rerun);
        return total;
      } finally {
        // In the same turn as the last `rerun` check (always after an await, so `pass` is set): a caller from here on
        // starts a pass of its own. Removed in a later .finally(), a caller in between would set `rerun` for a pass
        // that had already ended its loop and wait on it, with its rows unsent until some other pass or the sweeper.
        if (pass) this.passes.delete(pass);
      }
    })();
    this.passes.add(pass);
  }
}
