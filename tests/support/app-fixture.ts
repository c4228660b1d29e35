// The integration tests' shared set-up: the app's real Inngest functions, served by the SDK over HTTP and run by the
// local engine (manual clock) on a private Supabase (cloned database + PostgREST), with the offline Claude double.
// In the order every such test used to repeat by hand: Supabase, the double, the engine, the app's environment, then
// the app's modules (imported only once the environment points at these parts), served and synced.
//
//   let fx: AppFixture;
//   beforeAll(async () => { fx = await startAppFixture({ clock: new ManualClock(Date.now()) }); });
//   afterAll(() => fx?.stop());
//
// Tests of the route handlers (and the console's operations) need only the first part: startRouteFixture gives the
// same Supabase and environment, with a recording stand-in for Inngest's event API instead of the engine, so a test
// can assert exactly which events a request sent (and make the event API fail). Both start from the same core.
// One fixture per test file: the app's Inngest client is a module singleton that reads INNGEST_DEV once, so a second
// startAppFixture in the same file would sync against the first engine's address.
import type { Inngest, InngestFunction } from "inngest";
import { startClaudeDouble, type ClaudeDouble, type ClaudeDoubleOptions } from "../../local/claude/server";
import type { EngineOptions, ManualClock } from "../../local/engine";
import { serveApp, startTestEngine, type ServedApp, type TestEngine } from "./engine-harness";
import { startEventCapture, type EventCapture } from "./event-capture";
import { createTestSupabase, type TestSupabase } from "./supabase";

export interface AppFixture {
  sb: TestSupabase;
  /** The double now serving (a new object after restartDouble()). */
  double: ClaudeDouble;
  te: TestEngine;
  /** The engine's manual clock (the one passed in, or startTestEngine's own). */
  clock: ManualClock;
  app: ServedApp;
  /** Stops the double and starts it again on the same port with the same options (as a restarted `npm run dev`
   * does); returns the new one, which is also `double` from then on. */
  restartDouble(): Promise<ClaudeDouble>;
  /** Stops everything it started, the app first, and puts back the environment variables it set. */
  stop(): Promise<void>;
}

export interface AppFixtureOptions {
  /** The engine's clock; without one, startTestEngine's (2030-01-01). Pass `new ManualClock(Date.now())` when the
   * app's rows (stamped with real time) and the engine's timers must agree. */
  clock?: ManualClock;
  /** More of the engine's options, e.g. `mode: "classic"` (the clock is `clock` above). */
  engine?: Partial<Omit<EngineOptions, "clock" | "databaseUrl">>;
  /** The double's options; `onEngineClock` makes it tell time by the engine's clock (retry-after, rate windows). */
  double?: ClaudeDoubleOptions & { onEngineClock?: boolean };
  /** More environment for the app, set with the parts' URLs before its modules load. */
  env?: Record<string, string>;
  /** Variables to remove from the environment for the app's life (put back on stop). INNGEST_BASE_URL,
   * INNGEST_SIGNING_KEY and INNGEST_EVENT_KEY are always removed: the app talks to this engine in dev mode. */
  unset?: string[];
  /** Serve these instead of the app's functions: a test's own (with its own client when it gives one), made once the
   * environment points at these parts (so it may import the app's modules itself, hence the promise). `functions: []`
   * serves none: the engine then only receives events. */
  serve?: (inngest: Inngest.Any) => ServedFunctions | Promise<ServedFunctions>;
  /** Functions served beside the app's (e.g. another app's listener), made with the app's client. */
  extraFunctions?: (inngest: Inngest.Any) => InngestFunction.Any[];
  /** Wraps the SDK's handler, e.g. to count or drop the engine's calls. */
  wrap?: Parameters<typeof serveApp>[2];
}

type ServedFunctions = { client?: Inngest.Any; functions: InngestFunction.Any[] };

/** The common core: a private Supabase, and the environment set for the app (put back on stop). Each part started
 * registers how to stop it; stop() ends them in reverse order, then restores the environment. */
function fixtureCore() {
  const stops: (() => Promise<unknown>)[] = [];
  const savedEnv = new Map<string, string | undefined>();
  const setEnv = (k: string, v: string | undefined) => {
    if (!savedEnv.has(k)) savedEnv.set(k, process.env[k]);
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  };
  const stop = async () => {
    for (const s of stops.splice(0).reverse()) await s().catch(() => {});
    for (const [k, v] of savedEnv) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    savedEnv.clear();
  };
  return {
    stops,
    stop,
    async supabase(): Promise<TestSupabase> {
      const sb = await createTestSupabase();
      stops.push(() => sb.stop());
      return sb;
    },
    /** Points the app at the parts: the Inngest cloud keys and `unset` removed, `env` set, lib/env's cache dropped
     * (a module loaded earlier in the file must see the variables just set). */
    async pointApp(env: Record<string, string>, unset: string[] = []) {
      for (const k of ["INNGEST_BASE_URL", "INNGEST_SIGNING_KEY", "INNGEST_EVENT_KEY", ...unset]) setEnv(k, undefined);
      for (const [k, v] of Object.entries(env)) setEnv(k, v);
      (await import("@/lib/env")).resetEnvCache();
    },
  };
}

export interface RouteFixture {
  sb: TestSupabase;
  /** What the app sent to Inngest's event API (INNGEST_DEV points here); set `failing` to make it answer 500. */
  events: EventCapture;
  /** Stops what it started and puts back the environment variables it set. */
  stop(): Promise<void>;
}

export interface RouteFixtureOptions {
  /** More environment for the app, set before its modules load. */
  env?: Record<string, string>;
  /** Variables to remove for the fixture's life (the Inngest cloud keys always are). */
  unset?: string[];
}

/** A private Supabase and a recording event API, with the app's environment pointing at them; no engine, no double
 * (ANTHROPIC_BASE_URL points at a closed port: nothing here calls a model). Import the app's modules after it. */
export async function startRouteFixture(o: RouteFixtureOptions = {}): Promise<RouteFixture> {
  const core = fixtureCore();
  try {
    const sb = await core.supabase();
    const events = await startEventCapture();
    core.stops.push(() => events.stop());
    await core.pointApp(
      { SUPABASE_URL: sb.supabaseUrl, SUPABASE_SECRET_KEY: sb.secretKey, ANTHROPIC_BASE_URL: "http://127.0.0.1:9", INNGEST_DEV: events.url, ...o.env },
      o.unset,
    );
    return { sb, events, stop: core.stop };
  } catch (err) {
    await core.stop();
    throw err;
  }
}

export async function startAppFixture(o: AppFixtureOptions = {}): Promise<AppFixture> {
  const core = fixtureCore();
  const { stops, stop } = core;
  try {
    const sb = await core.supabase();
    const { onEngineClock, ...doubleOpts } = o.double ?? {};
    const clock = o.clock;
    const doubleOptions: ClaudeDoubleOptions = { ...doubleOpts, ...(onEngineClock && clock ? { now: () => clock.now() } : {}) };
    // One holder, so stop() ends whichever double is serving after a restart.
    const current = { double: await startClaudeDouble(doubleOptions) };
    stops.push(() => current.double.stop());
    const te = await startTestEngine({ ...o.engine, ...(clock ? { clock } : {}) });
    stops.push(() => te.close());
    await core.pointApp(
      { SUPABASE_URL: sb.supabaseUrl, SUPABASE_SECRET_KEY: sb.secretKey, ANTHROPIC_BASE_URL: current.double.url, INNGEST_DEV: te.engine.url, ...o.env },
      o.unset,
    );
    const { inngest } = await import("@/inngest/client");
    let served: { client: Inngest.Any; functions: InngestFunction.Any[] };
    if (o.serve) {
      const own = await o.serve(inngest);
      served = { client: own.client ?? inngest, functions: own.functions };
    } else {
      const { functions } = await import("@/inngest/index");
      served = { client: inngest, functions: [...functions, ...(o.extraFunctions?.(inngest) ?? [])] };
    }
    const app = await serveApp(served.client, served.functions, o.wrap);
    stops.push(() => app.close());
    await te.engine.sync(app.url);
    const fx: AppFixture = {
      sb,
      double: current.double,
      te,
      clock: te.clock,
      app,
      async restartDouble() {
        const port = Number(new URL(current.double.url).port);
        await current.double.stop();
        current.double = await startClaudeDouble({ ...doubleOptions, port });
        fx.double = current.double;
        return current.double;
      },
      stop,
    };
    return fx;
  } catch (err) {
    await stop();
    throw err;
  }
}
