// Retention: bookkeeping rows that have done their job are deleted after a configurable window, in bounded batches
// (docs/retention.md). Each kind is one SQL function call that deletes at most `batch` rows, oldest first, skipping
// rows another transaction holds; a full batch means there may be more, so it is called again, up to `maxBatches`
// per sweep — the next sweep (a minute later) carries on, so a backlog of months drains without one long statement.
import type { AdminClient } from "@/lib/db/admin";

export type RetentionKind = "outbox" | "webhook_attempts" | "notifications" | "web_page_cache";

export interface RetentionWindows {
  /** Seconds to keep each kind after it is done (sent, finished, created, fetched). */
  keepSeconds: Record<RetentionKind, number>;
  batch: number;
  maxBatches: number;
}

const DAY = 86_400;

/** The windows from the configuration (lib/env.ts; the web page cache keeps its own TTL, NIGHTSHIFT_WEB_CACHE_TTL_HOURS). */
export function retentionWindows(
  e: { NIGHTSHIFT_RETAIN_OUTBOX_DAYS: number; NIGHTSHIFT_RETAIN_WEBHOOK_ATTEMPTS_DAYS: number; NIGHTSHIFT_RETAIN_NOTIFICATIONS_DAYS: number },
  webCacheTtlMs: number,
): RetentionWindows {
  return {
    keepSeconds: {
      outbox: e.NIGHTSHIFT_RETAIN_OUTBOX_DAYS * DAY,
      webhook_attempts: e.NIGHTSHIFT_RETAIN_WEBHOOK_ATTEMPTS_DAYS * DAY,
      notifications: e.NIGHTSHIFT_RETAIN_NOTIFICATIONS_DAYS * DAY,
      web_page_cache: Math.ceil(webCacheTtlMs / 1000),
    },
    batch: 1000,
    maxBatches: 20,
  };
}

async function pruneBatch(db: AdminClient, kind: RetentionKind, keepSeconds: number, batch: number, now: Date): Promise<number> {
  const { data, error } =
    kind === "outbox"
      ? await db.rpc("outbox_prune", { p_keep_seconds: keepSeconds, p_limit: batch, p_now: now.toISOString() })
      : await db.rpc("prune_bookkeeping", { p_kind: kind, p_keep_seconds: keepSeconds, p_limit: batch, p_now: now.toISOString() });
  if (error) throw new Error(`retention (${kind}) failed: ${error.message}`);
  return data ?? 0;
}

/** Deletes what is past its window, kind by kind; returns how many rows of each went. */
export async function pruneBookkeeping(db: AdminClient, w: RetentionWindows, now = new Date()): Promise<Record<RetentionKind, number>> {
  const pruned = { outbox: 0, webhook_attempts: 0, notifications: 0, web_page_cache: 0 };
  for (const kind of Object.keys(pruned) as RetentionKind[]) {
    for (let i = 0; i < w.maxBatches; i++) {
      const n = await pruneBatch(db, kind, w.keepSeconds[kind], w.batch, now);
      pruned[kind] += n;
      if (n < w.batch) break;
    }
  }
  return pruned;
}
