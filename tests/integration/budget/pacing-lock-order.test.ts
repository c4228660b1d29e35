// The limiter's functions take their locks in one order — the model's rate_limits row first, then its
// rate_limit_in_flight rows — so a settlement (or return, or 429) racing an admission never deadlocks. An admission
// locks the model's row, then deletes the in-flight rows older than ten minutes and upserts its own ticket's; a
// settlement used to delete its ticket's in-flight row first and lock the model's row after: with a call settled
// more than ten minutes after its admission (or a ticket re-admitted while its first attempt settles), each held
// what the other wanted, Postgres aborted one of them, and an aborted settlement fails the step of a call already
// answered (the retry writes the call off and calls the model again).
// Made deterministic here: a third transaction holds the stale in-flight row while the two line up behind it.
import { randomBytes } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createTestSupabase, type TestSupabase } from "../../support/supabase";
import { until } from "../../support/engine-harness";
import { sql } from "../db/sql";

let sb: TestSupabase;
const T0 = Date.parse("2026-11-29T02:00:00Z");
const at = (s: number) => new Date(T0 + s * 1000).toISOString();

beforeAll(async () => {
  sb = await createTestSupabase();
});
afterAll(async () => {
  await sb?.stop();
});

async function client(): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: sb.databaseUrl });
  c.on("error", () => {});
  await c.connect();
  return c;
}

/** Resolves once the backend `pid` waits for a lock (polled; no time assumed). */
async function waitsForLock(pid: number, what: string): Promise<void> {
  await until(
    async () => (await sql<{ w: string | null }>(sb.databaseUrl, `select wait_event_type w from pg_stat_activity where pid = $1`, [pid]))[0]?.w === "Lock",
    { message: `${what} never waited for its lock`, timeoutMs: 60_000 },
  );
}

const leavers: Record<string, (m: string) => { text: string; values: unknown[] }> = {
  settle_rate_limit: (m) => ({ text: `select public.settle_rate_limit($1, 0, 0, p_now => $2, p_ticket => 'old')`, values: [m, at(660)] }),
  return_rate_limit: (m) => ({ text: `select public.return_rate_limit($1, 10, 100, $2, 'old')`, values: [m, at(660)] }),
  note_rate_limited: (m) => ({ text: `select public.note_rate_limited($1, 1, p_now => $2, p_ticket => 'old')`, values: [m, at(660)] }),
};

describe("the limiter's lock order", () => {
  test.each(Object.keys(leavers))("%s racing an admission that clears the stale in-flight rows: both complete", async (fn) => {
    const m = `claude-locks-${randomBytes(4).toString("hex")}`;
    await sql(sb.databaseUrl, `insert into public.rate_limits (model, requests_per_minute, input_tokens_per_minute, output_tokens_per_minute) values ($1, 1000, 100000, 100000)`, [m]);
    // A call admitted at 0 s and still unsettled at 660 s: to an admission at 660 s it is presumed lost.
    await sql(sb.databaseUrl, `select * from public.take_rate_limit($1, 'old', 0, 10, 100, null, $2)`, [m, at(0)]);

    const [holder, leaving, admitting] = [await client(), await client(), await client()];
    try {
      await holder.query("begin");
      await holder.query(`select 1 from public.rate_limit_in_flight where model = $1 and ticket = 'old' for update`, [m]);
      const leavingPid = (await leaving.query<{ p: number }>("select pg_backend_pid() p")).rows[0]!.p;
      const admittingPid = (await admitting.query<{ p: number }>("select pg_backend_pid() p")).rows[0]!.p;

      // The call leaves (settled, returned or refused) and queues for the in-flight row first ...
      const left = leaving.query(leavers[fn]!(m)).then(() => "ok", (e: Error) => e.message);
      await waitsForLock(leavingPid, fn);
      // ... then an admission arrives, clearing the rows older than ten minutes (the same row).
      const admitted = admitting
        .query(`select * from public.take_rate_limit($1, 'new', 0, 10, 100, null, $2)`, [m, at(660)])
        .then(() => "ok", (e: Error) => e.message);
      await waitsForLock(admittingPid, "take_rate_limit");
      await holder.query("commit");

      expect(await left).toBe("ok");
      expect(await admitted).toBe("ok");
      const rows = await sql<{ ticket: string }>(sb.databaseUrl, `select ticket from public.rate_limit_in_flight where model = $1`, [m]);
      // The old call is gone; the new one is in flight (unless the 429 blocked the model: then it waits, not in flight).
      expect(rows.map((r) => r.ticket)).toEqual(fn === "note_rate_limited" ? [] : ["new"]);
    } finally {
      await holder.query("rollback").catch(() => {});
      await Promise.all([holder.end(), leaving.end(), admitting.end()]);
    }
  });
});
