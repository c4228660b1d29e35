// The lock's re-take when this engine's own earlier session still holds it (local/engine/engine-lock.ts; docs/engine.md,
// "The single-writer lock"): the lock's connection broken on the engine's side only (a TCP proxy cuts it; Postgres
// keeps the session and its lock), so the re-take finds the lock held — by itself. It must recognise its own session
// (its backend pid, and the lock's row in pg_locks), end it, take the lock again and go on; never take it for another
// engine's and stop.
import { describe, expect, it } from "vitest";
import { Store } from "../../../local/engine/store";
import { LOCK_HOLDER, queuedRun, until } from "../../support/engine-harness";
import { useEmptyDatabase } from "../../support/postgres";
import { startTcpProxy } from "../../support/tcp-proxy";
import { sql } from "../db/sql";

describe("engine lock: its own stale session", () => {
  const t = useEmptyDatabase({ each: true });

  it("the lock's connection broken on the engine's side only: the engine ends its own old session and takes the lock again", async () => {
    const u = new URL(t.db.url);
    const proxy = await startTcpProxy(u.hostname, Number(u.port));
    const lines: string[] = [];
    let lost: Error | undefined;
    const store = new Store(proxy.via(t.db.url), { log: (l) => lines.push(l), onLockLost: (e) => (lost = e) });
    try {
      await store.migrate();
      await store.acquireEngineLock();
      await store.apply({ runs: [queuedRun("before")] });
      const [old] = await sql<{ pid: number; client_port: number }>(t.db.url, LOCK_HOLDER);
      expect(old).toBeDefined();
      expect(proxy.cutClientSide(old!.client_port)).toBe(true);
      await until(() => lines.some((l) => l.includes("held again")) || lost, { timeoutMs: 30_000, message: "the lock was never taken again" });
      expect(lost).toBeUndefined();
      expect(lines.some((l) => l.includes(`ended this engine's own earlier lock session (pid ${old!.pid})`))).toBe(true);
      const [now] = await sql<{ pid: number }>(t.db.url, LOCK_HOLDER);
      expect(now?.pid).toBeDefined();
      expect(now!.pid).not.toBe(old!.pid);
      await until(async () => (await sql(t.db.url, "SELECT 1 FROM pg_stat_activity WHERE pid = $1", [old!.pid])).length === 0, {
        message: "the old session was never ended",
      });
      await store.apply({ runs: [queuedRun("after")] }); // acknowledged again
      expect((await sql<{ id: string }>(t.db.url, "SELECT id FROM inngest_local.runs ORDER BY id")).map((r) => r.id)).toEqual(["after", "before"]);
      expect(lines.filter((l) => l.includes("ENGINE ERROR"))).toEqual([]);
    } finally {
      await store.close();
      await proxy.close();
    }
  }, 60_000);
});
