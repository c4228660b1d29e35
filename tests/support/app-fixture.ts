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
import type { ManualClock } from "../../local/engine";
import { serveApp, startTestEngine, type ServedApp, type TestEngine } from "./engine-harness";
import { createTestSupabase, type TestSupabase } from "./supabase";

export interface AppFixture {
  sb: TestSupabase;
  double: ClaudeDouble;
  te: TestEngine;
  /** The engine's manual clock (the one passed in, or startTestEngine's own). */
  clock: ManualClock;
  app: ServedApp;
  /** Stops everything it started, the app first, and puts back the environment variables it set. */
  stop(): Promise<void>;
}

export interface AppFixtureOptions {
  /** The engine's clock; without one, startTestEngine's (2030-01-01). Pass `new ManualClock(Date.now())` when the
   * app's rows (stamped with real time) and the engine's timers must agree. */
  clock?: ManualClock;
  /** The double's options; `onEngineClock` makes it tell time by the engine's clock (retry-after, rate windows). */
  double?: ClaudeDoubleOptions & { onEngineClock?: boolean };
  /** More environment for the app, set with the parts' URLs before its modules load. */
  env?: Record<string, string>;
  /** Functions served beside the app's (e.g. another app's listener), made with the app's client. */
  extraFunctions?: (inngest: Inngest.Any) => InngestFunction.Any[];
  /** Wraps the SDK's handler, e.g. to count or drop the engine's calls. */
  wrap?: Parameters<typeof serveApp>[2];
}

export async function startAppFixture(o: AppFixtureOptions = {}): Promise<AppFixture> {
  const stops: (() => Promise<unknown>)[] = [];
  const savedEnv = new Map<string, string | undefined>();
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
    const double = await startClaudeDouble({ ...doubleOpts, ...(onEngineClock && clock ? { now: () => clock.now() } : {}) });
    stops.push(() => double.stop());
    const te = await startTestEngine(clock ? { clock } : {});
    stops.push(() => te.close());
    const env = {
      SUPABASE_URL: sb.supabaseUrl,
      SUPABASE_SECRET_KEY: sb.secretKey,
      ANTHROPIC_BASE_URL: double.url,
      INNGEST_DEV: te.engine.url,
      ...o.env,
    };
    for (const [k, v] of Object.entries(env)) {
      if (!savedEnv.has(k)) savedEnv.set(k, process.env[k]);
      process.env[k] = v;
    }
    const { inngest } = await import("@/inngest/client");
    const { functions } = await import("@/inngest/index");
    const app = await serveApp(inngest, [...functions, ...(o.extraFunctions?.(inngest) ?? [])], o.wrap);
    stops.push(() => app.close());
    await te.engine.sync(app.url);
    return { sb, double, te, clock: te.clock, app, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
