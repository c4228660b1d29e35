// The integration tests' shared set-up: the app's real Inngest functions, served by the SDK over HTTP and run by the
// local engine (manual clock) on a private Supabase (cloned database + PostgREST), with the offline Claude double.
// In the order every such test used to repeat by hand: Supabase, the double, the engine, the app's environment, then
// the app's modules (imported only once the environment points at these parts), served and synced.
//
//   let fx: AppFixture;
//   beforeAll(async () => { fx = await startAppFixture({ clock: new ManualClock(Date.now()) }); });
//   afterAll(() => fx?.stop());
import type { Inngest, InngestFunction } from "inngest";
import { startClaudeDouble, type ClaudeDouble, type ClaudeDoubleOptions } from "../../local/claude/server";
import type { EngineOptions, ManualClock } from "../../local/engine";
import { serveApp, startTestEngine, type ServedApp, type TestEngine } from "./engine-harness";
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

export async function startAppFixture(o: AppFixtureOptions = {}): Promise<AppFixture> {
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
  try {
    const sb = await createTestSupabase();
    stops.push(() => sb.stop());
    const { onEngineClock, ...doubleOpts } = o.double ?? {};
    const clock = o.clock;
    const doubleOptions: ClaudeDoubleOptions = { ...doubleOpts, ...(onEngineClock && clock ? { now: () => clock.now() } : {}) };
    // One holder, so stop() ends whichever double is serving after a restart.
    const current = { double: await startClaudeDouble(doubleOptions) };
    stops.push(() => current.double.stop());
    const te = await startTestEngine({ ...o.engine, ...(clock ? { clock } : {}) });
    stops.push(() => te.close());
    for (const k of ["INNGEST_BASE_URL", "INNGEST_SIGNING_KEY", "INNGEST_EVENT_KEY", ...(o.unset ?? [])]) setEnv(k, undefined);
    const env = {
      SUPABASE_URL: sb.supabaseUrl,
      SUPABASE_SECRET_KEY: sb.secretKey,
      ANTHROPIC_BASE_URL: current.double.url,
      INNGEST_DEV: te.engine.url,
      ...o.env,
    };
    for (const [k, v] of Object.entries(env)) setEnv(k, v);
    // lib/env caches what it parsed: a module loaded earlier in this file must see the variables just set.
    (await import("@/lib/env")).resetEnvCache();
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
