// reserve_budget on the real database, through the real PostgREST and supabase-js as the app calls it: the cap holds
// under concurrency, a retried step reserves once, and the cap an operator sets applies to the next call.
import pg from "pg";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { releaseBudget, reserveBudget, settleBudget, BudgetError } from "../../../lib/budget";
import { createTestSupabase, type TestSupabase } from "../../support/supabase";
import { sql } from "../db/sql";
import {
  createAgent,
  createTask,
  expectCountersMatchLedger,
  ledgerCommitted,
  liveReservations,
  setCap,
} from "./helpers";

let sb: TestSupabase;
const NOW = "2026-11-26T15:00:00Z";
const DAY = "2026-11-26";
const MODEL = "claude-sonnet-4-6";

beforeAll(async () => {
  sb = await createTestSupabase();
});
afterAll(async () => {
  await sb?.stop();
});

/** Samples the agent's committed spend (from the ledger, in SQL) until stopped; returns the largest value seen. */
function sampleCommitted(agentId: string) {
  let stop = false;
  let max = 0;
  let samples = 0;
  const done = (async () => {
    while (!stop) {
      const committed = Object.values(await ledgerCommitted(sb.databaseUrl, agentId));
      max = Math.max(max, ...committed, 0);
      samples++;
    }
  })();
  return {
    async stop() {
      stop = true;
      await done;
      return { max, samples };
    },
  };
}

describe("reserve_budget under concurrency", () => {
  test("50 parallel reservations through supabase-js, cap fits exactly 10: exactly 10 succeed, never above the cap", async () => {
    const amount = 150_000;
    const cap = 10 * amount;
    const agent = await createAgent(sb.databaseUrl, { capMicros: cap });
    const tasks = await Promise.all(Array.from({ length: 5 }, () => createTask(sb.databaseUrl, agent)));

    const sampler = sampleCommitted(agent);
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        reserveBudget(sb.admin, {
          agentId: agent,
          taskId: tasks[i % 5]!,
          stepId: `turn-${Math.floor(i / 5) + 1}`,
          model: MODEL,
          amountMicros: amount,
          now: NOW,
        }),
      ),
    );
    const { max, samples } = await sampler.stop();

    expect(results.filter((r) => r.ok)).toHaveLength(10);
    expect(results.filter((r) => !r.ok)).toHaveLength(40);
    for (const r of results.filter((r) => !r.ok)) {
      expect(r).toMatchObject({ reservationId: null, status: null, reservedMicros: 0, remainingMicros: 0, capMicros: cap });
      expect(r.neverFits).toBe(false);
    }
    expect(new Set(results.filter((r) => r.ok).map((r) => r.reservationId)).size).toBe(10);

    expect(samples).toBeGreaterThan(0);
    expect(max).toBeLessThanOrEqual(cap);
    expect(await ledgerCommitted(sb.databaseUrl, agent)).toEqual({ [DAY]: cap });
    const [rows] = await sql<{ n: string }>(
      sb.databaseUrl,
      `select count(*)::text as n from public.budget_reservations where agent_id = $1`,
      [agent],
    );
    expect(rows!.n).toBe("10"); // refused reservations leave nothing behind
    await expectCountersMatchLedger(sb.databaseUrl, agent);
  });

  test("50 connections straight to Postgres, released at once: still exactly 10", async () => {
    // PostgREST's pool (10 connections) queues requests; this drives 50 transactions into the row lock together.
    const amount = 70_001;
    const cap = 10 * amount;
    const agent = await createAgent(sb.databaseUrl, { capMicros: cap });
    const task = await createTask(sb.databaseUrl, agent);
    const clients = await Promise.all(
      Array.from({ length: 50 }, async () => {
        const c = new pg.Client({ connectionString: sb.databaseUrl });
        c.on("error", () => {});
        await c.connect();
        return c;
      }),
    );
    try {
      const rows = await Promise.all(
        clients.map((c, i) =>
          c
            .query<{ ok: boolean }>(`select ok from public.reserve_budget($1, $2, $3, $4, $5, $6)`, [
              agent,
              task,
              `turn-${i}`,
              MODEL,
              amount,
              NOW,
            ])
            .then((r) => r.rows[0]!.ok),
        ),
      );
      expect(rows.filter(Boolean)).toHaveLength(10);
    } finally {
      await Promise.all(clients.map((c) => c.end()));
    }
    expect(await ledgerCommitted(sb.databaseUrl, agent)).toEqual({ [DAY]: cap });
    await expectCountersMatchLedger(sb.databaseUrl, agent);
  });

  test("32 workers reserving, settling and releasing until refused: the ledger never goes above the cap", async () => {
    const cap = 5_000_000;
    const agent = await createAgent(sb.databaseUrl, { capMicros: cap });
    const task = await createTask(sb.databaseUrl, agent);
    let step = 0;
    let refused = 0;
    const settledSoFar = async () => {
      const { data, error } = await sb.admin.from("budget_windows").select("settled_micros").eq("agent_id", agent).single();
      expect(error).toBeNull();
      return data!.settled_micros;
    };
    const sampler = sampleCommitted(agent);
    await Promise.all(
      Array.from({ length: 32 }, async (_, w) => {
        for (;;) {
          const stepId = `turn-${++step}`;
          const amount = 20_000 + ((w * 7919 + step * 104729) % 60_000);
          const r = await reserveBudget(sb.admin, { agentId: agent, taskId: task, stepId, model: MODEL, amountMicros: amount, now: NOW });
          if (!r.ok) {
            refused++;
            // A refusal may be due to reservations in flight; stop once the settled spend alone leaves no room.
            if ((await settledSoFar()) + amount > cap) return;
            continue;
          }
          if (step % 5 === 0) await releaseBudget(sb.admin, { taskId: task, stepId, now: NOW });
          else await settleBudget(sb.admin, { taskId: task, stepId, actualMicros: Math.floor(amount / 3), now: NOW });
        }
      }),
    );
    const { max } = await sampler.stop();
    expect(max).toBeLessThanOrEqual(cap);
    const committed = (await ledgerCommitted(sb.databaseUrl, agent))[DAY]!;
    expect(committed).toBeLessThanOrEqual(cap);
    expect(committed).toBeGreaterThan(cap - 80_000); // it ran until the last call could not fit
    expect(refused).toBeGreaterThanOrEqual(32);
    await expectCountersMatchLedger(sb.databaseUrl, agent);
    const [open] = await sql<{ n: string }>(
      sb.databaseUrl,
      `select count(*)::text as n from public.budget_reservations where agent_id = $1 and status = 'reserved'`,
      [agent],
    );
    expect(open!.n).toBe("0");
  });
});

describe("a retried step reserves once", () => {
  test("a second reservation of the same (task, step) returns the first and reserves nothing more", async () => {
    const agent = await createAgent(sb.databaseUrl, { capMicros: 1_000_000 });
    const task = await createTask(sb.databaseUrl, agent);
    const args = { agentId: agent, taskId: task, stepId: "turn-1", model: MODEL, amountMicros: 400_000, now: NOW };

    const first = await reserveBudget(sb.admin, args);
    expect(first).toMatchObject({ ok: true, status: "reserved", reservedMicros: 400_000, remainingMicros: 600_000 });
    // A retry may compute a different worst case (or run after midnight): the first reservation stands.
    const again = await reserveBudget(sb.admin, { ...args, amountMicros: 900_000, now: "2026-11-27T15:00:00Z" });
    expect(again).toEqual({ ...first });
    expect(await ledgerCommitted(sb.databaseUrl, agent)).toEqual({ [DAY]: 400_000 });
  });

  test("20 concurrent calls for the same step: one reservation, all callers get it", async () => {
    const agent = await createAgent(sb.databaseUrl, { capMicros: 1_000_000 });
    const task = await createTask(sb.databaseUrl, agent);
    const results = await Promise.all(
      Array.from({ length: 20 }, () =>
        reserveBudget(sb.admin, { agentId: agent, taskId: task, stepId: "turn-3", model: MODEL, amountMicros: 300_000, now: NOW }),
      ),
    );
    expect(results.every((r) => r.ok && r.status === "reserved")).toBe(true);
    expect(new Set(results.map((r) => r.reservationId)).size).toBe(1);
    expect(await liveReservations(sb.databaseUrl, task, "turn-3")).toHaveLength(1);
    expect(await ledgerCommitted(sb.databaseUrl, agent)).toEqual({ [DAY]: 300_000 });
    await expectCountersMatchLedger(sb.databaseUrl, agent);
  });

  test("20 concurrent calls for the same step straight to Postgres: one reservation", async () => {
    const agent = await createAgent(sb.databaseUrl, { capMicros: 1_000_000 });
    const task = await createTask(sb.databaseUrl, agent);
    const clients = await Promise.all(
      Array.from({ length: 20 }, async () => {
        const c = new pg.Client({ connectionString: sb.databaseUrl });
        c.on("error", () => {});
        await c.connect();
        return c;
      }),
    );
    try {
      const ids = await Promise.all(
        clients.map((c) =>
          c
            .query<{ ok: boolean; reservation_id: string }>(
              `select ok, reservation_id from public.reserve_budget($1, $2, 'turn-1', $3, 300000, $4)`,
              [agent, task, MODEL, NOW],
            )
            .then((r) => (r.rows[0]!.ok ? r.rows[0]!.reservation_id : null)),
        ),
      );
      expect(ids.every((id) => id !== null)).toBe(true);
      expect(new Set(ids).size).toBe(1);
    } finally {
      await Promise.all(clients.map((c) => c.end()));
    }
    expect(await ledgerCommitted(sb.databaseUrl, agent)).toEqual({ [DAY]: 300_000 });
    await expectCountersMatchLedger(sb.databaseUrl, agent);
  });

  test("after a settle, the step's reservation is returned as settled (ok) and nothing is reserved again", async () => {
    const agent = await createAgent(sb.databaseUrl, { capMicros: 1_000_000 });
    const task = await createTask(sb.databaseUrl, agent);
    const args = { agentId: agent, taskId: task, stepId: "turn-1", model: MODEL, amountMicros: 500_000, now: NOW };
    const first = await reserveBudget(sb.admin, args);
    await settleBudget(sb.admin, { taskId: task, stepId: "turn-1", actualMicros: 120_000, now: NOW });

    const again = await reserveBudget(sb.admin, args);
    expect(again).toMatchObject({
      ok: true,
      reservationId: first.reservationId,
      status: "settled",
      reservedMicros: 500_000,
      remainingMicros: 880_000,
    });
    expect(await ledgerCommitted(sb.databaseUrl, agent)).toEqual({ [DAY]: 120_000 });
  });

  test("after a release, the retry of the failed call reserves anew; the released attempt stays as history", async () => {
    const agent = await createAgent(sb.databaseUrl, { capMicros: 1_000_000 });
    const task = await createTask(sb.databaseUrl, agent);
    const args = { agentId: agent, taskId: task, stepId: "turn-2", model: MODEL, amountMicros: 500_000, now: NOW };
    const first = await reserveBudget(sb.admin, args);
    expect(await releaseBudget(sb.admin, { taskId: task, stepId: "turn-2", now: NOW })).toBe(true);

    const retry = await reserveBudget(sb.admin, args);
    expect(retry).toMatchObject({ ok: true, status: "reserved", reservedMicros: 500_000, remainingMicros: 500_000 });
    expect(retry.reservationId).not.toBe(first.reservationId);
    expect((await liveReservations(sb.databaseUrl, task, "turn-2")).map((r) => r.status)).toEqual(["released", "reserved"]);
    expect(await ledgerCommitted(sb.databaseUrl, agent)).toEqual({ [DAY]: 500_000 });
    await expectCountersMatchLedger(sb.databaseUrl, agent);
  });
});

describe("the cap", () => {
  test("is read at reservation time: an operator's change applies to the very next call", async () => {
    const agent = await createAgent(sb.databaseUrl, { capMicros: 1_000_000 });
    const task = await createTask(sb.databaseUrl, agent);
    const reserve = (stepId: string, amountMicros: number) =>
      reserveBudget(sb.admin, { agentId: agent, taskId: task, stepId, model: MODEL, amountMicros, now: NOW });

    expect((await reserve("turn-1", 600_000)).ok).toBe(true);
    await setCap(sb.databaseUrl, agent, 500_000); // lowered below what is already committed
    const refused = await reserve("turn-2", 1);
    expect(refused).toMatchObject({ ok: false, remainingMicros: 0, capMicros: 500_000, neverFits: false });

    await setCap(sb.databaseUrl, agent, 2_000_000);
    expect(await reserve("turn-2", 1_400_000)).toMatchObject({ ok: true, remainingMicros: 0, capMicros: 2_000_000 });
    const [w] = await sql<{ cap: string }>(
      sb.databaseUrl,
      `select cap_micros::text as cap from public.budget_windows where agent_id = $1`,
      [agent],
    );
    expect(w!.cap).toBe("2000000");
  });

  test("a call larger than the whole cap is refused as one that never fits; a zero cap refuses everything", async () => {
    const agent = await createAgent(sb.databaseUrl, { capMicros: 100_000 });
    const task = await createTask(sb.databaseUrl, agent);
    const big = await reserveBudget(sb.admin, { agentId: agent, taskId: task, stepId: "turn-1", model: MODEL, amountMicros: 100_001, now: NOW });
    expect(big).toMatchObject({ ok: false, neverFits: true, remainingMicros: 100_000 });
    const exact = await reserveBudget(sb.admin, { agentId: agent, taskId: task, stepId: "turn-1", model: MODEL, amountMicros: 100_000, now: NOW });
    expect(exact).toMatchObject({ ok: true, remainingMicros: 0 });

    await setCap(sb.databaseUrl, agent, 0);
    const none = await reserveBudget(sb.admin, { agentId: agent, taskId: task, stepId: "turn-2", model: MODEL, amountMicros: 1, now: NOW });
    expect(none).toMatchObject({ ok: false, neverFits: true });
  });

  test("bad calls fail with typed errors: unknown agent, a task of another agent, a negative amount", async () => {
    const agent = await createAgent(sb.databaseUrl, { capMicros: 100_000 });
    const other = await createAgent(sb.databaseUrl, { capMicros: 100_000 });
    const task = await createTask(sb.databaseUrl, agent);
    const attempt = (over: Record<string, unknown>) =>
      reserveBudget(sb.admin, { agentId: agent, taskId: task, stepId: "turn-1", model: MODEL, amountMicros: 1, now: NOW, ...over }).then(
        () => null,
        (e: unknown) => e,
      );

    const unknownAgent = await attempt({ agentId: "no-such-agent" });
    expect(unknownAgent).toBeInstanceOf(BudgetError);
    expect((unknownAgent as BudgetError).code).toBe("NSB01");
    expect(((await attempt({ agentId: other })) as BudgetError).code).toBe("NSB02");
    expect(((await attempt({ taskId: "00000000-0000-4000-8000-00000000dead" })) as BudgetError).code).toBe("NSB02");
    // The wrapper refuses a negative amount before the network; the function refuses it too.
    expect(await attempt({ amountMicros: -1 })).toBeInstanceOf(Error);
    const code = await sql(sb.databaseUrl, `select * from public.reserve_budget($1, $2, 'turn-1', 'm', -1)`, [agent, task]).then(
      () => "none",
      (e: { code?: string }) => e.code,
    );
    expect(code).toBe("22023");
    expect(await ledgerCommitted(sb.databaseUrl, agent)).toEqual({});
  });

  test("an agent's budget time zone must be an IANA name", async () => {
    const agent = await createAgent(sb.databaseUrl, { capMicros: 1 });
    await expect(
      sql(sb.databaseUrl, `update public.agents set budget_timezone = 'UTC+3' where id = $1`, [agent]),
    ).rejects.toMatchObject({ code: "22023" });
    await sql(sb.databaseUrl, `update public.agents set budget_timezone = 'Asia/Kolkata' where id = $1`, [agent]);
  });
});
