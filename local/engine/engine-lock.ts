// The engine's single-writer lock: one engine per database (schema inngest_local), a session-level advisory lock
// held on a connection of its own for the engine's life.
import type pg from "pg";

const LOCK_KEY = "hashtext('inngest_local.engine')";

export class EngineLock {
  private client: pg.PoolClient | undefined;

  constructor(private readonly pool: pg.Pool) {}

  /**
   * Takes the lock. A killed engine's session ends with its process, which releases the lock, so a restart waits
   * briefly instead of failing.
   */
  async acquire(waitMs = 15_000): Promise<void> {
    const c = await this.pool.connect();
    const deadline = Date.now() + waitMs;
    for (;;) {
      const r = await c.query<{ ok: boolean }>(`SELECT pg_try_advisory_lock(${LOCK_KEY}) AS ok`);
      if (r.rows[0]?.ok) {
        // Held for the engine's life: when Postgres stops first (Ctrl-C reaches the whole process group), the
        // server ends this session with 57P01, emitted as an 'error' event that must not crash the process.
        c.on("error", () => {});
        this.client = c;
        return;
      }
      if (Date.now() > deadline) {
        c.release();
        throw new Error("another local Inngest engine is already running on this database (schema inngest_local)");
      }
      await new Promise((res) => setTimeout(res, 200));
    }
  }

  /** Releases the lock (best effort: with Postgres gone, so is the session and the lock with it). */
  async release(): Promise<void> {
    if (!this.client) return;
    await this.client.query(`SELECT pg_advisory_unlock(${LOCK_KEY})`).catch(() => {});
    this.client.release();
    this.client = undefined;
  }
}
