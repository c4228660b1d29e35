// Helpers for the local engine's tests: a real SDK serve endpoint over HTTP, an engine on a fresh database,
// and polling with deadlines (no sleeps that hope for the best).
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Inngest, type InngestFunction } from "inngest";
import { serve } from "inngest/node";
import { ManualClock, startEngine, type Engine, type EngineOptions, type RunDetail } from "../../local/engine";
import type { RunRow } from "../../local/engine/store";
import { createTestDatabase, type TestDatabase } from "./postgres";

export interface ServedApp {
  /** The serve route, e.g. http://127.0.0.1:1234/api/inngest */
  url: string;
  server: Server;
  close(): Promise<void>;
}

/** Serves functions with the SDK's own node handler on a free port, like the app's /api/inngest route. */
export async function serveApp(
  client: Inngest.Any,
  functions: InngestFunction.Any[],
  wrap?: (handler: ReturnType<typeof serve>) => ReturnType<typeof serve>,
  port = 0,
): Promise<ServedApp> {
  const handler = serve({ client, functions });
  const server = createServer(wrap ? wrap(handler) : handler);
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((r) => server.listen(port, "127.0.0.1", () => r()));
  const bound = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${bound}/api/inngest`,
    server,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

export interface TestEngine {
  engine: Engine;
  clock: ManualClock;
  db: TestDatabase;
  close(): Promise<void>;
}

/** An engine with a manual clock on a fresh, empty database of the test run's Postgres. */
export async function startTestEngine(opts: Partial<Omit<EngineOptions, "clock">> & { clock?: ManualClock } = {}): Promise<TestEngine> {
  const db = await createTestDatabase({ empty: true });
  // The test's own clock when it passes one (te.clock is then that clock), else a manual clock at a fixed date.
  const clock = opts.clock ?? new ManualClock(Date.parse("2030-01-01T00:00:00Z"));
  const lines: string[] = [];
  const engine = await startEngine({
    databaseUrl: db.url,
    clock,
    log: (l) => {
      lines.push(l);
      if (process.env["ENGINE_DEBUG"]) console.log(`[engine] ${l}`);
    },
    ...opts,
  });
  return {
    engine,
    clock,
    db,
    async close() {
      await engine.stop();
      await db.drop().catch(() => {});
    },
  };
}

export interface PollOptions {
  timeoutMs?: number;
  intervalMs?: number;
  /** Called between polls, e.g. to move a manual clock forward. */
  tick?: () => void | Promise<void>;
  message?: string;
}

/**
 * A `tick` for `until` that moves a manual clock only while the engine is idle (no call in flight, ready or being
 * committed). Time then never jumps while work admitted earlier is still under way, however loaded the machine is:
 * a test that counts what happened in each stretch of engine time sees the same counts on a slow machine as on a
 * fast one.
 */
export function quietTick(engine: Engine, clock: ManualClock, ms: number, maxBusyMs = 20_000): () => void {
  let busySince: number | null = null;
  return () => {
    if (engine.idle()) {
      busySince = null;
      clock.advance(ms);
      return;
    }
    // Never frozen for good: an engine that has not been idle for maxBusyMs of real time (a call that hangs until
    // its own timeout) gets its time moved anyway, so the test fails on its assertions, not on a silent stall.
    busySince ??= Date.now();
    if (Date.now() - busySince > maxBusyMs) {
      busySince = null;
      clock.advance(ms);
    }
  };
}

/** Polls `fn` until it returns a truthy value, or throws after the deadline with the last value seen. */
export async function until<T>(fn: () => Promise<T> | T, o: PollOptions = {}): Promise<NonNullable<T>> {
  const deadline = Date.now() + (o.timeoutMs ?? 20_000);
  let last: T | undefined;
  for (;;) {
    last = await fn();
    if (last) return last as NonNullable<T>;
    if (Date.now() > deadline) {
      throw new Error(`${o.message ?? "condition not met"} before the deadline; last value: ${JSON.stringify(last)}`);
    }
    await o.tick?.();
    await new Promise((r) => setTimeout(r, o.intervalMs ?? 20));
  }
}

/** Waits until the run started by `eventId` (for `functionId`) exists; returns its id. */
export async function runFor(engine: Engine, eventId: string, functionId: string, o: PollOptions = {}): Promise<string> {
  const run = await until(
    async () => (await engine.listRuns({ event_id: eventId, function_id: functionId }))[0],
    { message: `no run of ${functionId} for event ${eventId}`, ...o },
  );
  return run.run_id;
}

/** Waits for a run to reach one of `statuses`; returns its detail. */
export async function runReaches(
  engine: Engine,
  runId: string,
  statuses: string | string[],
  o: PollOptions = {},
): Promise<RunDetail> {
  const want = Array.isArray(statuses) ? statuses : [statuses];
  let seen: RunDetail | undefined;
  try {
    return await until(
      async () => {
        seen = await engine.getRun(runId);
        return seen && want.includes(seen.status) ? seen : undefined;
      },
      { message: `run ${runId} did not reach ${want.join("/")}`, ...o },
    );
  } catch (err) {
    throw new Error(`${(err as Error).message}; run: ${JSON.stringify(seen, null, 1)?.slice(0, 3000)}`);
  }
}

/** A promise with its resolve handle: lets a test hold a step body open until it says so. */
export function latch(): { promise: Promise<void>; open: () => void; reached: Promise<void>; arrive: () => void } {
  let open!: () => void;
  let arrive!: () => void;
  const promise = new Promise<void>((r) => (open = r));
  const reached = new Promise<void>((r) => (arrive = r));
  return { promise, open, reached, arrive };
}

/** Counts how many times each step body ran. */
export class Counter {
  private counts = new Map<string, number>();
  hit(key: string): void {
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
  }
  get(key: string): number {
    return this.counts.get(key) ?? 0;
  }
}

/** The SDK logs every step error to the console; the tests assert on outcomes instead. */
export const quietLogger = {
  info: () => {},
  warn: () => {},
  error: () => {},
  debug: () => {},
};

/** A queued run row as the engine's store writes it, for tests that drive Store.apply directly. */
/** The session holding the engine's single-writer lock in the current database: its backend pid and client port. */
export const LOCK_HOLDER = `SELECT l.pid, a.client_port FROM pg_locks l JOIN pg_database d ON d.oid = l.database
  JOIN pg_stat_activity a ON a.pid = l.pid
  WHERE d.datname = current_database() AND l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
    AND l.objid = (hashtext('inngest_local.engine')::bigint & 4294967295)::oid`;

export function queuedRun(id: string, o: { output?: unknown; data?: Record<string, unknown>; createdAt?: number } = {}): RunRow {
  const at = o.createdAt ?? 1;
  return {
    id,
    function_id: "app-fn",
    status: "queued",
    event_id: `ev-${id}`,
    event: { name: "test/go", data: o.data ?? {}, id: `ev-${id}`, ts: at },
    event_seq: 1,
    created_at: at,
    started_at: null,
    ended_at: null,
    output: o.output ?? null,
    error: null,
    disable_immediate: false,
    concurrency_keys: [],
    parent: null,
  };
}

/**
 * A three-step function (s1, s2, s3, each counted) whose third step waits, the first time it runs, until the test
 * opens the latch: s1 and s2 are checkpointed (acknowledged) while s3 is in flight — the moment a crash test wants.
 */
export function latchedThreeSteps(
  port: number,
  counter: Counter,
  hold: ReturnType<typeof latch>,
  o: { app: string; event: string; retries?: 0 | 1 | 2 | 3 | 4 },
) {
  const inngest = new Inngest({ id: o.app, isDev: true, baseUrl: `http://127.0.0.1:${port}`, logger: quietLogger });
  const config = { id: "three-steps", triggers: [{ event: o.event }], ...(o.retries !== undefined ? { retries: o.retries } : {}) };
  const fn = inngest.createFunction(config, async ({ step }) => {
    const a = await step.run("s1", () => (counter.hit("s1"), 1));
    const b = await step.run("s2", () => (counter.hit("s2"), a + 1));
    return step.run("s3", async () => {
      counter.hit("s3");
      if (counter.get("s3") === 1) {
        hold.arrive();
        await hold.promise;
      }
      return b + 1;
    });
  });
  return { inngest, fn };
}
