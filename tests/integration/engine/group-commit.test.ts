// The engine store's group commit (local/engine/store.ts apply): transitions that arrive while one is being
// committed are committed together, each caller answered once its own transition is durable; a bad transition in a
// batch fails alone; two updates of one run in a batch both land.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Store, type RunRow } from "../../../local/engine/store";
import { createTestDatabase, type TestDatabase } from "../../support/postgres";

const run = (id: string, created_at: number): RunRow => ({
  id,
  function_id: "app-fn",
  status: "queued",
  event_id: `ev-${id}`,
  event: { name: "test/go", data: {}, id: `ev-${id}`, ts: created_at },
  event_seq: 1,
  created_at,
  started_at: null,
  ended_at: null,
  output: null,
  error: null,
  disable_immediate: false,
  concurrency_keys: [],
  parent: null,
});

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
});
