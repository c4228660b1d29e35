// A run woken by an event (a slot's hand-over, an approval) is called while a burst of new runs fills the engine's
// calls in flight (local/engine/dispatch.ts pump: the last places in flight are kept for runs already under way).
// Without that, the woken run's call waits for one of the burst's calls to end — here they never end until the test
// lets them, so the test fails instead of being slow.
import { Inngest } from "inngest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { latch, quietLogger, runFor, runReaches, serveApp, startTestEngine, until, type ServedApp, type TestEngine } from "../../support/engine-harness";

describe("local engine: a woken run overtakes a burst of new runs", () => {
  let t: TestEngine;
  let app: ServedApp;
  let inngest: Inngest.Any;
  const gate = latch();
  let held = 0;
  const saved = { ...process.env };

  beforeAll(async () => {
    // 8 calls in flight at most: new runs may take 7, one place is kept for runs already under way.
    t = await startTestEngine({ maxInflight: 8 });
    for (const k of ["INNGEST_DEV", "INNGEST_BASE_URL", "INNGEST_SIGNING_KEY", "INNGEST_EVENT_KEY"]) delete process.env[k];
    Object.assign(process.env, t.engine.appEnv());
    inngest = new Inngest({ id: "wakeup-priority", logger: quietLogger });
    const waiter = inngest.createFunction({ id: "waiter", triggers: [{ event: "test/wait" }] }, async ({ step }) => {
      const got = await step.waitForEvent("slot", { event: "test/slot.released", timeout: "1h" });
      return { woken: got !== null };
    });
    // The burst: each new run holds its call open until the gate opens.
    const busy = inngest.createFunction({ id: "busy", triggers: [{ event: "test/busy" }] }, async ({ step }) => {
      return step.run("hold", async () => {
        held++;
        await gate.promise;
        return "done";
      });
    });
    app = await serveApp(inngest, [waiter, busy]);
    await t.engine.sync(app.url);
  });

  afterAll(async () => {
    gate.open();
    await app?.close();
    await t?.close();
    process.env = saved;
  });

  it("calls the woken run while every place new runs may take is held", async () => {
    const { ids: [waitEvent] } = await inngest.send({ name: "test/wait", data: {} });
    const waiterRun = await runFor(t.engine, waitEvent!, "wakeup-priority-waiter");
    await runReaches(t.engine, waiterRun, "waiting");

    await inngest.send(Array.from({ length: 20 }, (_, i) => ({ name: "test/busy", data: { i } })));
    // The burst holds every place a new run may take (7 of 8); the other 13 wait in line.
    await until(() => held >= 7, { message: "the burst did not fill the engine", timeoutMs: 60_000 });

    await inngest.send({ name: "test/slot.released", data: {} });
    const run = await runReaches(t.engine, waiterRun, "completed", { timeoutMs: 60_000 });
    expect(run.output).toEqual({ woken: true });
    // The burst is still held: the woken run did not wait for it.
    expect(held).toBe(7);
    gate.open();
    const busyRuns = await until(async () => {
      const runs = await t.engine.listRuns({ function_id: "wakeup-priority-busy", status: "completed", limit: 100 });
      return runs.length === 20 ? runs : undefined;
    }, { timeoutMs: 60_000 });
    expect(busyRuns).toHaveLength(20);
  }, 240_000);
});
