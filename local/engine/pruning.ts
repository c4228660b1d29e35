// Pruning of in-memory state that only matters for a while: event ids seen in the dedupe window.
import { DEDUPE_WINDOW } from "./core";
import { DueWork } from "./due";

export abstract class Pruning extends DueWork {
  protected startPruning(): void {
    this.pruneTimer = setInterval(() => this.pruneSeenIds(), 60 * 60_000);
    this.pruneTimer.unref();
  }

  protected stopPruning(): void {
    if (this.pruneTimer) clearInterval(this.pruneTimer);
  }

  protected pruneSeenIds(): void {
    const cutoff = this.clock.now() - DEDUPE_WINDOW;
    for (const [id, at] of this.seenIds) if (at < cutoff) this.seenIds.delete(id);
  }
}
