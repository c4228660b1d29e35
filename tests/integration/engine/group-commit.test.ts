// The engine store's group commit (local/engine/store.ts apply): transitions that arrive while one is being
// committed are committed together, each caller answered once its own transition is durable; a bad transition in a
// batch fails alone; two updates of one run in a batch both land.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Store } from "../../../local/engine/store";
import { queuedRun } from "../../support/engine-harness";
import { createTestDatabase, type TestDatabase } from "../../support/postgres";

const run = (id: string, createdAt: number) => queuedRun(id, { createdAt });

describe("engine store group commit", () => {
  let db: TestDatabase;
  let store: Store;

  beforeAll(async () => {
    db = await createTestDatabase({ empty: true });
    store = new Store(db.url);
    await store.migrate();
  });

  afterAll(async () => {
    await store?.close();
    await db?.drop();
  });

  it("commits transitions that arrive together in one batch, both updates of one run included", async () => {
    await store.apply({ runs: [run("dup", 1)] });
    // The first goes alone; the rest arrive while it is in flight and are committed together.
    await Promise.all([
      store.apply({ runs: [run("first", 5)] }),
      ...Array.from({ length: 40 }, (_, i) =>
        store.apply({
          runs: [run(`r${i}`, 10 + i)],
          memos: [{ run_id: `r${i}`, hash: "h", pos: 0, value: { data: i }, at: 10 + i }],
        }),
      ),
      store.apply({ runUpdates: [{ id: "dup", status: "running" }] }),
      store.apply({ runUpdates: [{ id: "dup", disable_immediate: true }] }),
    ]);
    const memos = await store.pool.query("SELECT count(*)::int AS n FROM inngest_local.memos");
    expect(memos.rows[0].n).toBe(40);
    const dup = await store.pool.query("SELECT status, disable_immediate FROM inngest_local.runs WHERE id = 'dup'");
    expect(dup.rows[0]).toEqual({ status: "running", disable_immediate: true });
  });

  it("fails only the bad transition of a batch", async () => {
    const results = await Promise.allSettled([
      store.apply({ runs: [run("second", 60)] }),
      ...Array.from({ length: 10 }, (_, i) => store.apply({ runs: [run(`s${i}`, 70 + i)] })),
      store.apply({ runs: [run("dup", 2)] }), // the primary key is taken: this one fails, and only it
      store.apply({ runs: [run("last", 90)] }),
    ]);
    expect(results.map((r) => r.status)).toEqual([...Array(11).fill("fulfilled"), "rejected", "fulfilled"]);
    const n = await store.pool.query("SELECT count(*)::int AS n FROM inngest_local.runs WHERE id IN ('second', 'last') OR id LIKE 's%'");
    expect(n.rows[0].n).toBe(12);
  });

  it("commits checkpointed steps (memo + history only) alone and in batches, a memo written twice kept once", async () => {
    const step = (runId: string, i: number) => ({
      memos: [{ run_id: runId, hash: `h${i}`, pos: i, value: { data: { i, text: "x".repeat(100) } }, at: 100 + i }],
      history: [{ run_id: runId, at: 100 + i, type: "step.completed", step: `h${i}`, name: `step-${i}`, detail: { checkpointed: true } }],
    });
    await store.apply(step("cp", 0)); // alone
    await Promise.all([store.apply(step("cp", 1)), ...Array.from({ length: 20 }, (_, i) => store.apply(step(`cp${i}`, i))), store.apply(step("cp", 1))]);
    const memos = await store.loadMemos("cp");
    expect(memos.map((m) => [m.hash, m.pos, m.value])).toEqual([
      ["h0", 0, { data: { i: 0, text: "x".repeat(100) } }],
      ["h1", 1, { data: { i: 1, text: "x".repeat(100) } }],
    ]);
    const hist = await store.history("cp3");
    expect(hist).toEqual([{ run_id: "cp3", at: 103, type: "step.completed", step: "h3", name: "step-3", detail: { checkpointed: true } }]);
    const n = await store.pool.query("SELECT count(*)::int AS n FROM inngest_local.memos WHERE run_id LIKE 'cp%'");
    expect(n.rows[0].n).toBe(22);
  });
});
