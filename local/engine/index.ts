// The local Inngest engine: a small, durable, single-machine stand-in for the Inngest dev server that speaks
// the SDK's HTTP protocol (inngest 4.24) to the app's real serve route. See docs/engine.md.
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RealClock, type Clock } from "./clock";
import { Executor, type EngineMode } from "./executor";
import { createEngineServer } from "./http";
import type { IncomingEvent } from "./protocol";
import { Store, type RunListFilter } from "./store";
import { runDetail, runView, type RunDetail, type RunView } from "./views";

export { ManualClock, RealClock, type Clock } from "./clock";
export type { RunDetail, RunView } from "./views";
export type { EngineMode } from "./executor";

/** INNGEST_ENGINE_MODE=classic selects the one-step-per-request flow; anything else is rejected loudly. */
export function engineModeFromEnv(value = process.env["INNGEST_ENGINE_MODE"]): EngineMode {
  if (!value || value === "checkpoint") return "checkpoint";
  if (value === "classic") return "classic";
  throw new Error(`INNGEST_ENGINE_MODE must be "checkpoint" or "classic", not "${value}"`);
}

/**
 * Where the engine journals its transitions (docs/engine.md, "The journal"): `journalDir`, else
 * INNGEST_ENGINE_JOURNAL_DIR, else `<os tmpdir>/nightshift-engine-journal`; "off" keeps Postgres the durable point.
 */
export function resolveJournalDir(value = process.env["INNGEST_ENGINE_JOURNAL_DIR"]): string | undefined {
  if (value === "off") return undefined;
  return value || join(tmpdir(), "nightshift-engine-journal");
}

export interface EngineOptions {
  /** 0 or undefined: a free port. The engine listens on 127.0.0.1 unless `host` says otherwise. */
  port?: number;
  host?: string;
  /** Postgres URL; all state lives in the schema `inngest_local`, created on start. */
  databaseUrl: string;
  clock?: Clock;
  /** Cloud mode: requests to the app are signed, its responses and syncs are verified. */
  signingKey?: string;
  /** When set, the event API accepts only this key. */
  eventKey?: string;
  /** One line per run transition. Silent when absent. */
  log?: (line: string) => void;
  /** Tuning and test hooks. */
  maxInflight?: number;
  callTimeoutMs?: number;
  retryBackoff?: (attempt: number) => number;
  maxRetryAfterMs?: number;
  /** "checkpoint" (default) or "classic"; see docs/engine.md. Default from INNGEST_ENGINE_MODE. */
  mode?: EngineMode;
  /** Directory of the engine's journal, or "off"; default INNGEST_ENGINE_JOURNAL_DIR, else a directory in the OS
   * temp dir (see resolveJournalDir). The dev stack passes its data directory. */
  journalDir?: string;
  /**
   * Called once the engine stopped itself because another engine took its single-writer lock on the database (after
   * a Postgres restart or a terminated session; docs/engine.md, "The single-writer lock"). The CLI exits non-zero.
   */
  onFatal?: (err: Error) => void;
}

export interface Engine {
  url: string;
  port: number;
  clock: Clock;
  mode: EngineMode;
  /** True when a signing key is configured (cloud-mode protocol). */
  signed: boolean;
  /** Asks the app to sync (PUT on its serve route); throws with the engine's reason when the sync fails. */
  sync(appServeUrl: string): Promise<void>;
  /** Sends events straight to the engine (as POST /e/:key would); returns the event ids. */
  send(events: IncomingEvent | IncomingEvent[]): Promise<string[]>;
  listRuns(filter?: RunListFilter): Promise<RunView[]>;
  getRun(runId: string): Promise<RunDetail | undefined>;
  /** Stops listening and scheduling; calls in flight are given a moment to finish and persist. */
  stop(): Promise<void>;
  /** True when no call is in flight, ready or being committed (see Executor.idle). For tests on a manual clock. */
  idle(): boolean;
  /** Environment for an app that should use this engine. */
  appEnv(): Record<string, string>;
}

export async function startEngine(opts: EngineOptions): Promise<Engine> {
  const log = opts.log ?? (() => {});
  const clock = opts.clock ?? new RealClock();
  // The lock lost to another engine: this one stops itself (stop() below; it may happen before stop() exists).
  let lost: Error | undefined;
  let stopSelf: (() => void) | undefined;
  let dispatcher: Executor | undefined;
  const store = new Store(opts.databaseUrl, {
    log,
    onLockHeld: (held) => dispatcher?.pauseDispatch(!held),
    onLockLost: (err) => {
      lost = err;
      stopSelf?.();
    },
  });
  await store.migrate();
  try {
    await store.acquireEngineLock();
    // Before anything reads the state: what a previous engine acknowledged from its journal but did not apply.
    await store.recoverJournals();
    const journalDir = resolveJournalDir(opts.journalDir);
    if (journalDir) await store.openJournal(journalDir);
  } catch (err) {
    await store.close().catch(() => {});
    throw err;
  }
  const executor = new Executor({
    store,
    clock,
    signingKey: opts.signingKey,
    log,
    maxInflight: opts.maxInflight,
    callTimeoutMs: opts.callTimeoutMs,
    retryBackoff: opts.retryBackoff,
    maxRetryAfterMs: opts.maxRetryAfterMs,
    mode: opts.mode ?? engineModeFromEnv(),
  });
  dispatcher = executor;
  try {
    await executor.load();
  } catch (err) {
    await store.close().catch(() => {});
    throw err;
  }
  const server = createEngineServer({ executor, store, signingKey: opts.signingKey, eventKey: opts.eventKey, log });
  server.keepAliveTimeout = 65_000;
  const host = opts.host ?? "127.0.0.1";
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const url = `http://${host}:${port}`;
  log(`local Inngest engine listening on ${url} (${opts.signingKey ? "signed cloud" : "dev"} mode, ${executor.mode} execution)`);

  let stopped = false;
  const engine: Engine = {
    url,
    port,
    clock,
    mode: executor.mode,
    signed: Boolean(opts.signingKey),
    async sync(appServeUrl) {
      const res = await fetch(appServeUrl, { method: "PUT" });
      const text = await res.text();
      if (!res.ok) {
        let message = text;
        try {
          message = (JSON.parse(text) as { message?: string }).message ?? text;
        } catch {}
        throw new Error(`sync of ${appServeUrl} failed (HTTP ${res.status}): ${message}`);
      }
    },
    send: (events) => executor.ingest(Array.isArray(events) ? events : [events]),
    idle: () => executor.idle(),
    listRuns: async (filter = {}) => (await store.listRuns(filter)).map(runView),
    async getRun(runId) {
      const run = await store.getRun(runId);
      return run ? runDetail(run, await store.history(runId)) : undefined;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      server.closeAllConnections?.();
      await new Promise<void>((r) => server.close(() => r()));
      store.beginClose(); // a commit waiting for the lock (Postgres down) must not hold the stop up
      await executor.stop();
      await store.close();
    },
    appEnv(): Record<string, string> {
      return opts.signingKey
        ? {
            INNGEST_BASE_URL: url,
            INNGEST_SIGNING_KEY: opts.signingKey,
            INNGEST_EVENT_KEY: opts.eventKey ?? "local",
            INNGEST_DEV: "0",
          }
        : { INNGEST_DEV: url };
    },
  };
  stopSelf = () => {
    const done = () => {
      log("the engine stopped itself: another engine owns this database now");
      opts.onFatal?.(lost!);
    };
    void engine.stop().then(done, done);
  };
  if (lost) stopSelf();
  return engine;
}
