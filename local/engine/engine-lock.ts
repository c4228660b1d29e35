// The engine's single-writer lock: one engine per database (schema inngest_local), a session-level advisory lock
// held on a connection of its own for the engine's life (docs/engine.md, "The single-writer lock").
//
// The lock lives only as long as that session: a Postgres restart or a pg_terminate_backend ends it, and another
// engine could then take it. So the connection is watched: when it ends, the lock is re-taken on a new connection
// (with backoff while Postgres is down), and until it is, the engine acknowledges nothing (Store.drainApplies waits on
// `whenHeld`) — an engine that cannot show it still owns the database must not promise anything. If another engine
// took the lock meanwhile, this one has lost the database for good: `onLost` fires once and every waiter is refused.
import pg from "pg";

const LOCK_KEY = "hashtext('inngest_local.engine')";
/** How long EngineLock.confirm waits for the lock's connection to answer. */
const CONFIRM_MS = 10_000;
const TRY_LOCK = `SELECT pg_try_advisory_lock(${LOCK_KEY}) AS ok`;
/** The lock's row in pg_locks: a bigint key shows as its high and low 32 bits (classid, objid) with objsubid 1. */
const LOCK_ROW = `objsubid = 1 AND classid = ((${LOCK_KEY}::bigint >> 32) & 4294967295)::oid AND objid = (${LOCK_KEY}::bigint & 4294967295)::oid`;

/** What a transition meets once another engine owns the database. */
export class EngineLockLost extends Error {
  constructor() {
    super(
      "this engine lost its single-writer lock on the database (schema inngest_local) to another engine and stopped writing",
    );
    this.name = "EngineLockLost";
  }
}

export interface EngineLockOptions {
  log: (line: string) => void;
  /** Called once, when another engine holds the lock this engine lost. */
  onLost?: (err: EngineLockLost) => void;
  /** Called with false when the lock's connection ended and it is being re-taken, with true once it is held again. */
  onHeld?: (held: boolean) => void;
}

type State = "none" | "held" | "retaking" | "lost" | "released";

export class EngineLock {
  private client: pg.Client | undefined;
  private state: State = "none";
  private lostError: EngineLockLost | undefined;
  /** Set when the engine stops: a transition no longer waits for the lock to be re-taken (see giveUpWaiting). */
  private stopping: Error | undefined;
  /** Waiters for the lock to be held again (while re-taking it). */
  private regained: { promise: Promise<void>; resolve: () => void; reject: (err: Error) => void } | undefined;

  constructor(
    private readonly connectionString: string,
    private readonly opts: EngineLockOptions,
  ) {}

  /**
   * Takes the lock. A killed engine's session ends with its process, which releases the lock, so a restart waits
   * briefly instead of failing.
   */
  async acquire(waitMs = 15_000): Promise<void> {
    const c = await this.connect();
    const deadline = Date.now() + waitMs;
    try {
      for (;;) {
        const r = await c.query<{ ok: boolean }>(TRY_LOCK);
        if (r.rows[0]?.ok) break;
        if (Date.now() > deadline) {
          throw new Error("another local Inngest engine is already running on this database (schema inngest_local)");
        }
        await new Promise((res) => setTimeout(res, 200));
      }
    } catch (err) {
      await c.end().catch(() => {});
      throw err;
    }
    this.hold(c);
  }

  /** Undefined while the lock is held (or was never taken: a bare Store); else resolves once re-taken, or rejects. */
  whenHeld(): Promise<void> | undefined {
    if (this.state === "held" || this.state === "none") return undefined;
    if (this.state === "lost") return Promise.reject(this.lostError);
    if (this.state === "released") return Promise.reject(new Error("the engine's store is closed"));
    if (this.stopping) return Promise.reject(this.stopping);
    return this.regained!.promise;
  }

  /**
   * The engine is stopping: what waits for the lock to be re-taken (Postgres down) is refused now, and so is what
   * would wait from now on — never acknowledged, so nothing is lost — instead of holding the stop up for good.
   */
  giveUpWaiting(): void {
    this.stopping ??= new Error("the engine is stopping while its single-writer lock is being re-taken; not acknowledged");
    this.regained?.reject(this.stopping);
  }

  /** True while the lock is held (or was never taken: a bare Store), as whenHeld() returning undefined. */
  get held(): boolean {
    return this.state === "held" || this.state === "none";
  }

  /** True once another engine holds the lock this one lost. */
  get lost(): boolean {
    return this.state === "lost";
  }

  /**
   * Another engine recovered this engine's journal (its fence, found after a write or by the applier): it holds the
   * lock, whatever this engine's connection still shows (a session the server ended, whose end has not arrived yet).
   * Lost for good, as when the re-take finds another holder.
   */
  fence(): void {
    if (this.state === "lost" || this.state === "released") return;
    const c = this.client;
    this.client = undefined;
    void c?.end().catch(() => {});
    this.markLost();
  }

  /** Lost for good: every waiter is refused, and onLost fires (once: callers check the state first). */
  private markLost(): void {
    this.state = "lost";
    this.lostError = new EngineLockLost();
    const w = this.regained;
    this.regained = undefined;
    w?.reject(this.lostError);
    this.opts.onLost?.(this.lostError);
  }

  /** Releases the lock (best effort: with Postgres gone, so is the session and the lock with it). */
  async release(): Promise<void> {
    const c = this.client;
    const was = this.state;
    this.state = "released";
    this.client = undefined;
    this.regained?.reject(new Error("the engine's store is closed"));
    this.regained = undefined;
    if (!c) return;
    if (was === "held") await c.query(`SELECT pg_advisory_unlock(${LOCK_KEY})`).catch(() => {});
    await c.end().catch(() => {});
  }

  private async connect(): Promise<pg.Client> {
    const c = new pg.Client({ connectionString: this.connectionString, keepAlive: true });
    // When Postgres ends the session (a restart, pg_terminate_backend: 57P01), the client emits 'error'; never a
    // crash. The loss itself is handled by the 'end' listener hold() adds.
    c.on("error", () => {});
    try {
      await c.connect();
    } catch (err) {
      await c.end().catch(() => {});
      throw err;
    }
    return c;
  }

  /** The backend pid of the session that held the lock last (pg's BackendKeyData), to recognise it in pg_locks. */
  private heldBy: number | undefined;

  private hold(c: pg.Client): void {
    this.client = c;
    this.state = "held";
    this.heldBy = (c as pg.Client & { processID?: number | null }).processID ?? undefined;
    // The session's end, or an error on its connection (a 57P01 arrives before the socket closes): either way this
    // connection no longer proves the lock is ours, so stop acknowledging at once rather than on the socket's close.
    const gone = () => this.ended(c);
    c.once("end", gone);
    c.on("error", gone);
  }

  /** The lock's connection `c` no longer proves the lock is ours: stop acknowledging and re-take it. */
  private ended(c: pg.Client): void {
    if (this.client !== c || this.state !== "held") return; // released, or already replaced
    void c.end().catch(() => {});
    this.client = undefined;
    this.state = "retaking";
    let resolve!: () => void;
    let reject!: (err: Error) => void;
    const promise = new Promise<void>((res, rej) => ((resolve = res), (reject = rej)));
    promise.catch(() => {}); // rejected with nobody waiting: not an unhandled rejection
    this.regained = { promise, resolve, reject };
    this.opts.log("ENGINE WARNING: the connection holding the engine's single-writer lock ended (Postgres restarted, or the session was terminated); nothing is acknowledged until the lock is taken again");
    this.opts.onHeld?.(false);
    void this.retake();
  }

  /**
   * Asks Postgres, on the lock's own connection, whether this session still holds the lock. For the rare paths that
   * write without the journal's fence (a fresh journal about to be opened, a commit straight to Postgres after the
   * journal was given up): a session the server already ended fails this query, so a loser that has not yet seen
   * its end finds out before it writes, not after. False — and the lock is being re-taken — when it cannot show it.
   * (It narrows the window to one round trip; it does not close it as the journal's fence does.)
   */
  async confirm(): Promise<boolean> {
    if (this.state === "none") return true; // a bare Store: no lock was ever taken
    const c = this.client;
    if (this.state !== "held" || !c) return false;
    let timer: NodeJS.Timeout | undefined;
    try {
      // A connection whose end never arrives (its far side gone silently) would hold the query for good: past
      // CONFIRM_MS it counts as ended too — at worst a pause while the lock is re-taken (its own session ended first).
      const r = await Promise.race([
        c.query(`SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = pg_backend_pid() AND ${LOCK_ROW}`),
        new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error("no answer")), CONFIRM_MS))),
      ]);
      if (r.rows.length) return true;
    } catch {
      // the session is gone (or silent): as its end
    } finally {
      clearTimeout(timer);
    }
    this.ended(c);
    return false;
  }

  /** Re-takes the lock on a new connection, with backoff while Postgres cannot be reached. */
  private async retake(): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      if (this.state !== "retaking") return;
      let c: pg.Client | undefined;
      try {
        c = await this.connect();
        const r = await c.query<{ ok: boolean }>(TRY_LOCK);
        if (this.state !== "retaking") {
          // closed meanwhile: give back what was just taken
          if (r.rows[0]?.ok) await c.query(`SELECT pg_advisory_unlock(${LOCK_KEY})`).catch(() => {});
          await c.end().catch(() => {});
          return;
        }
        if (r.rows[0]?.ok) {
          this.hold(c);
          this.opts.log(`the engine's single-writer lock is held again (after ${attempt + 1} tries); acknowledging again`);
          const w = this.regained;
          this.regained = undefined;
          w?.resolve();
          this.opts.onHeld?.(true);
          return;
        }
        // Not ours to take. If the holder is still our own old session (the connection broke on this side only,
        // and the server has not noticed yet), end that session and take the lock again; else another engine has it.
        if (this.heldBy !== undefined) {
          // pg_terminate_backend(pid, timeout) waits for the session to exit (and so release the lock): without it, a
          // session slow to exit (a loaded machine) made the next try find the lock still held — and the engine took
          // its own old session for another engine's and stopped. A session still ours after the wait is ended again;
          // an error here is an outage (the catch below), never a reason to think the lock lost.
          const stale = await c.query<{ ended: boolean }>(
            `SELECT pg_terminate_backend(pid, 10000) AS ended FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = $1 AND ${LOCK_ROW}`,
            [this.heldBy],
          );
          if (stale.rows.length) {
            await c.end().catch(() => {});
            if (stale.rows.some((r) => r.ended)) {
              this.opts.log(`ended this engine's own earlier lock session (pid ${this.heldBy}), which still held the lock; taking it again`);
            }
            continue;
          }
        }
        await c.end().catch(() => {});
        this.markLost();
        return;
      } catch (err) {
        await c?.end().catch(() => {});
        if (attempt === 0) {
          this.opts.log(`cannot reach Postgres to take the engine's lock again (${err instanceof Error ? err.message : String(err)}); retrying until it answers`);
        }
        // Postgres is down or restarting: try again soon (a refused connection costs nothing).
        await new Promise((r) => setTimeout(r, Math.min(1_000, 25 * 2 ** Math.min(attempt, 6))));
      }
    }
  }
}
