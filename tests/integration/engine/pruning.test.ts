// The engine's retention (local/engine/pruning.ts, docs/retention.md) on its real schema: finished runs past the
// window go with their memos and history, processed events past it go; a run still in flight stays whatever its
// age, as does an unprocessed event, and everything inside the window.
import pg from "pg";
import { describe, expect, it } from "vitest";
import { engineRetainMs, pruneEngineBatch } from "../../../local/engine/pruning";
import { Store } from "../../../local/engine/store";
import { useEmptyDatabase } from "../../support/postgres";
import { sql } from "../db/sql";

const DAY = 86_400_000;

describe("engine pruning", () => {
  const t = useEmptyDatabase();

  it("deletes old finished runs (memos, history) and old processed events in bounded batches; keeps the rest", async () => {
    const store = new Store(t.db.url);
    try {
      await store.migrate();
    } finally {
      await store.pool.end();
    }
    const now = Date.now();
    const old = now - 10 * DAY;
    const recent = now - 1 * DAY;
    // 5 old finished runs, 1 old run still running (a long wait), 1 recent finished run; each with 2 memos and 3
    // history rows and its event. One old event never processed.
    await sql(
      t.db.url,
      `insert into inngest_local.runs (id, function_id, status, event_id, event, event_seq, created_at, ended_at)
       select r.id, 'app-fn', r.status, 'ev-' || r.id, '{}', r.seq, r.at, case when r.status <> 'running' then r.at + 1000 end
         from (values ('old-1', 'completed', 1, $1::bigint), ('old-2', 'failed', 2, $1), ('old-3', 'cancelled', 3, $1),
                      ('old-4', 'completed', 4, $1), ('old-5', 'completed', 5, $1), ('old-waiting', 'running', 6, $1),
                      ('recent', 'completed', 7, $2::bigint)) r(id, status, seq, at)`,
      [old, recent],
    );
    await sql(t.db.url, `insert into inngest_local.memos (run_id, hash, pos, value, at)
                         select r.id, 'h' || k, k, '{}', r.created_at from inngest_local.runs r, generate_series(1, 2) k`);
    await sql(t.db.url, `insert into inngest_local.history (run_id, at, type)
                         select r.id, r.created_at, 'StepCompleted' from inngest_local.runs r, generate_series(1, 3) k`);
    await sql(
      t.db.url,
      `insert into inngest_local.events (internal_id, seq, name, payload, received_at, processed)
       select r.event_id, r.event_seq, 'app/x', '{}'::jsonb, r.created_at, true from inngest_local.runs r
       union all select 'ev-unprocessed', 100, 'app/x', '{}'::jsonb, $1::bigint, false`,
      [old],
    );

    const cutoff = now - engineRetainMs({ NIGHTSHIFT_ENGINE_RETAIN_DAYS: "7" });
    const pool = new pg.Pool({ connectionString: t.db.url, max: 2 });
    pool.on("error", () => {});
    try {
      // Batches of 3: the 5 old finished runs and the 6 old processed events (the waiting run's too: the run keeps
      // its own copy) take two calls; the third finds nothing.
      expect(await pruneEngineBatch(pool, cutoff, 3)).toEqual({ runs: 3, events: 3 });
      expect(await pruneEngineBatch(pool, cutoff, 3)).toEqual({ runs: 2, events: 3 });
      expect(await pruneEngineBatch(pool, cutoff, 3)).toEqual({ runs: 0, events: 0 });
    } finally {
      await pool.end();
    }

    const ids = async (q: string) => (await sql<{ id: string }>(t.db.url, q)).map((r) => r.id).sort();
    expect(await ids(`select id from inngest_local.runs`)).toEqual(["old-waiting", "recent"]);
    expect(await ids(`select distinct run_id as id from inngest_local.memos`)).toEqual(["old-waiting", "recent"]);
    expect(await ids(`select distinct run_id as id from inngest_local.history`)).toEqual(["old-waiting", "recent"]);
    expect(await ids(`select internal_id as id from inngest_local.events`)).toEqual(["ev-recent", "ev-unprocessed"]);
  });

  it("never keeps less than the dedupe window, whatever is configured", () => {
    expect(engineRetainMs({ NIGHTSHIFT_ENGINE_RETAIN_DAYS: "0.01" })).toBe(DAY);
    expect(engineRetainMs({ NIGHTSHIFT_ENGINE_RETAIN_DAYS: "junk" })).toBe(7 * DAY);
    expect(engineRetainMs({})).toBe(7 * DAY);
    expect(engineRetainMs({ NIGHTSHIFT_ENGINE_RETAIN_DAYS: "30" })).toBe(30 * DAY);
  });
});

