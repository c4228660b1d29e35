// Pruning of state that only matters for a while: event ids seen in the dedupe window (memory), and — in the
// database — finished runs with their memos and history, and processed events, once older than the retention window
// (NIGHTSHIFT_ENGINE_RETAIN_DAYS, default 7; docs/retention.md). Hourly, in bounded batches.
import type pg from "pg";
import { DAY, DEDUPE_WINDOW } from "./core";
import { DueWork } from "./due";

const PRUNE_BATCH = 1000;
const PRUNE_MAX_BATCHES = 50;

/** How long finished runs and processed events stay (never less than the dedupe window). */
export function engineRetainMs(env: Record<string, string | undefined> = process.env): number {
  const days = Number(env["NIGHTSHIFT_ENGINE_RETAIN_DAYS"] || 7);
  return Math.max(DEDUPE_WINDOW, (Number.isFinite(days) && days > 0 ? days : 7) * DAY);
}

/**
 * Deletes up to `batch` finished runs that ended before `cutoffMs` (with their memos and history) and up to `batch`
 * processed events received before it; one statement each. A run still in flight is never touched, whatever its age;
 * an event is only deleted once processed. Returns the counts (a full batch means there may be more).
 */
/**
 * One batch of finished runs (with their memos and history) that ended before $1; $2 = the batch size. The batch's
 * ids go in `= ANY (ARRAY(…))`, so each delete looks them up by key (a join would hash the batch against a scan of
 * the whole memos/history table).
 */
export const PRUNE_RUNS_SQL = `WITH gone AS (
    DELETE FROM inngest_local.runs r
     WHERE r.id = ANY (ARRAY(SELECT x.id FROM inngest_local.runs x
                              WHERE x.status IN ('completed', 'failed', 'cancelled') AND x.created_at < $1 AND x.ended_at < $1
                              LIMIT $2))
    RETURNING r.id),
  ids AS (SELECT array_agg(id) AS a FROM gone),
  memos AS (DELETE FROM inngest_local.memos m USING ids WHERE m.run_id = ANY (ids.a)),
  history AS (DELETE FROM inngest_local.history h USING ids WHERE h.run_id = ANY (ids.a))
  SELECT coalesce(cardinality(a), 0) AS n FROM ids`;

/** One batch of processed events received before $1; the newest event stays (the next start numbers after its seq). */
export const PRUNE_EVENTS_SQL = `DELETE FROM inngest_local.events e
   WHERE e.internal_id = ANY (ARRAY(SELECT x.internal_id FROM inngest_local.events x
                                     WHERE x.processed AND x.received_at < $1
                                       AND x.seq < (SELECT max(y.seq) FROM inngest_local.events y)
                                     ORDER BY x.seq LIMIT $2))`;

/**
 * Deletes up to `batch` finished runs that ended before `cutoffMs` (with their memos and history) and up to `batch`
 * processed events received before it; one statement each. A run still in flight is never touched, whatever its age;
 * an event is only deleted once processed. Returns the counts (a full batch means there may be more).
 */
export async function pruneEngineBatch(pool: pg.Pool, cutoffMs: number, batch = PRUNE_BATCH): Promise<{ runs: number; events: number }> {
  const runs = await pool.query<{ n: string }>(PRUNE_RUNS_SQL, [cutoffMs, batch]);
  const events = await pool.query(PRUNE_EVENTS_SQL, [cutoffMs, batch]);
  return { runs: Number(runs.rows[0]!.n), events: events.rowCount ?? 0 };
}

export abstract class Pruning extends DueWork {
  protected startPruning(): void {
    this.pruneTimer = setInterval(() => {
      this.pruneSeenIds();
      void this.pruneFinished();
    }, 60 * 60_000);
    this.pruneTimer.unref();
  }

  protected stopPruning(): void {
    if (this.pruneTimer) clearInterval(this.pruneTimer);
  }

  protected pruneSeenIds(): void {
    const cutoff = this.clock.now() - DEDUPE_WINDOW;
    for (const [id, at] of this.seenIds) if (at < cutoff) this.seenIds.delete(id);
  }

  protected async pruneFinished(): Promise<void> {
    const cutoff = this.clock.now() - engineRetainMs();
    try {
      for (let i = 0; i < PRUNE_MAX_BATCHES && !this.stopping; i++) {
        const n = await pruneEngineBatch(this.store.pool, cutoff);
        if (n.runs < PRUNE_BATCH && n.events < PRUNE_BATCH) break;
      }
    } catch (err) {
      // Housekeeping: the next hour tries again.
      this.log(`engine: pruning finished runs failed: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
}
