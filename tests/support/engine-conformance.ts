// The conformance suite, run once in dev mode and once in signed cloud mode (see tests/integration/engine).
// Real SDK serve() over HTTP, real inngest.send(), a manual clock for every timer.
import { randomBytes } from "node:crypto";
import { Inngest } from "inngest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { conformanceFunctions, holdFor, newHooks, type Hooks } from "./engine-functions";
import type { EngineMode } from "../../local/engine";
import { hashSigningKey } from "../../local/engine/signing";
import { quietLogger, runFor, runReaches, serveApp, startTestEngine, until, type ServedApp, type TestEngine } from "./engine-harness";

const HOUR = 3_600_000;
const hashedKey = () => hashSigningKey(process.env["INNGEST_SIGNING_KEY"]!);

/** `mode`: the app's protocol (dev or signed cloud); `execution`: the engine's checkpointing or classic flow. */
export function conformanceSuite(mode: "dev" | "signed", execution: EngineMode): void {
  describe(`local engine conformance (${mode} mode, ${execution} execution)`, () => {
    let t: TestEngine;
    let app: ServedApp;
    let inngest: Inngest.Any;
    let h: Hooks;
    const appId = `conformance-${mode}-${execution}`;
    /** SDK calls received by the serve route (POSTs), to show how many steps one request carries. */
    let calls = 0;
    const fid = (id: string) => `${appId}-${id}`;
    const saved = { ...process.env };

    beforeAll(async () => {
      const signingKey = mode === "signed" ? `signkey-test-${randomBytes(32).toString("hex")}` : undefined;
      t = await startTestEngine({ signingKey, eventKey: mode === "signed" ? "test-event-key" : undefined, mode: execution });
      // The app is configured the way a deployment would be: environment variables only.
      for (const k of ["INNGEST_DEV", "INNGEST_BASE_URL", "INNGEST_SIGNING_KEY", "INNGEST_EVENT_KEY"]) delete process.env[k];
      Object.assign(process.env, t.engine.appEnv());
      inngest = new Inngest({ id: appId, logger: quietLogger });
      h = newHooks();
      app = await serveApp(inngest, conformanceFunctions(inngest, h), (handler) => (req, res) => {
        if (req.method === "POST") calls++;
        return handler(req, res);
      });
      await t.engine.sync(app.url);
    });

    afterAll(async () => {
      await app?.close();
      await t?.close();
      process.env = saved;
    });

    async function send(name: string, data: Record<string, unknown> = {}, id?: string): Promise<string> {
      const { ids } = await inngest.send({ name, data, ...(id ? { id } : {}) });
      expect(ids).toHaveLength(1);
      return ids[0]!;
    }

    async function start(event: string, fn: string, data: Record<string, unknown> = {}): Promise<string> {
      return runFor(t.engine, await send(event, data), fid(fn));
    }

    /** Moves the manual clock forward while polling, so retries with backoff come due. */
    const ticking = (ms: number) => ({ tick: () => t.clock.advance(ms) });

    it("runs sequential steps once each and returns the output", async () => {
      const runId = await start("test/sequential", "sequential", { input: "hello" });
      const run = await runReaches(t.engine, runId, "completed");
      expect(run.output).toEqual({ a: 1, len: 2048, b: 2, d: null, input: "hello" });
      expect([h.counter.get("seq:a"), h.counter.get("seq:b"), h.counter.get("seq:c")]).toEqual([1, 1, 1]);
      expect(run.history.filter((x) => x.type === "step.completed").map((x) => x.step_name)).toEqual(["a", "b", "c"]);
      expect(run.history[0]?.type).toBe("run.queued");
      expect(run.history.at(-1)?.type).toBe("run.completed");
    });

    it(`runs ${execution === "checkpoint" ? "all steps in one request, checkpointed" : "one step per request"}`, async () => {
      const before = calls;
      const runId = await start("test/sequential", "sequential", { input: "count" });
      const run = await runReaches(t.engine, runId, "completed");
      const completed = run.history.filter((x) => x.type === "step.completed");
      if (execution === "checkpoint") {
        expect(calls - before).toBe(1);
        expect(completed.map((x) => x.detail)).toEqual([{ checkpointed: true }, { checkpointed: true }, { checkpointed: true }]);
      } else {
        expect(calls - before).toBe(4);
        expect(completed.every((x) => x.detail === null)).toBe(true);
      }
    });

    it("honours the SDK's checkpointing maxRuntime: steps past it are planned and run in later requests", async () => {
      const runId = await start("test/short-runtime", "short-runtime");
      const run = await runReaches(t.engine, runId, "completed");
      expect(run.output).toBe(3);
      expect(["r1", "r2", "r3"].map((k) => h.counter.get(`short:${k}`))).toEqual([1, 1, 1]);
      const planned = run.history.filter((x) => x.type === "step.planned").length;
      if (execution === "checkpoint") expect(planned).toBeGreaterThanOrEqual(1);
      else expect(planned).toBe(0);
    });

    it("answers 409 (stale dispatch) to a checkpoint for a call the engine is not waiting for", async () => {
      const runId = await start("test/sequential", "sequential", { input: "stale" });
      await runReaches(t.engine, runId, "completed");
      const auth: Record<string, string> = mode === "signed" ? { authorization: `Bearer ${hashedKey()}` } : {};
      const body = (qi: string) =>
        JSON.stringify({ run_id: runId, fn_id: fid("sequential"), qi_id: qi, request_id: "r", steps: [{ id: "x", op: "StepRun", data: 1 }] });
      const done = await fetch(`${t.engine.url}/v1/checkpoint/${runId}/async`, { method: "POST", headers: auth, body: body("nope") });
      expect(done.status).toBe(409);
      // A live run whose call is not in flight (it waits for an event): also stale.
      const sleeping = await start("test/wait.start", "waiter", { id: "stale-checkpoint" });
      await runReaches(t.engine, sleeping, "waiting");
      const res = await fetch(`${t.engine.url}/v1/checkpoint/${sleeping}/async`, {
        method: "POST",
        headers: auth,
        body: JSON.stringify({ run_id: sleeping, fn_id: fid("waiter"), qi_id: "nope", steps: [] }),
      });
      expect(res.status).toBe(409);
      const bad = await fetch(`${t.engine.url}/v1/checkpoint/${sleeping}/async`, { method: "POST", headers: auth, body: "{}" });
      expect(bad.status).toBe(400);
      if (mode === "signed") {
        const unauth = await fetch(`${t.engine.url}/v1/checkpoint/${sleeping}/async`, { method: "POST", body: body("nope") });
        expect(unauth.status).toBe(401);
      }
    });

    it("retries a failing step with backoff (StepError) until it succeeds", async () => {
      const runId = await start("test/flaky", "flaky");
      const run = await runReaches(t.engine, runId, "completed", ticking(60_000));
      expect(run.output).toBe("ok after 3");
      expect(h.counter.get("flaky")).toBe(3);
      const errored = run.history.filter((x) => x.type === "step.errored");
      expect(errored).toHaveLength(2);
      // Inngest's schedule: the first retry comes 15 s (plus up to 30 s jitter) later, not at once.
      const first = errored[0]!;
      const delay = Date.parse((first.detail as { retry_at: string }).retry_at) - Date.parse(first.at);
      expect(delay).toBeGreaterThanOrEqual(15_000);
      expect(delay).toBeLessThan(45_000);
    });

    it("memoizes the error after the last retry (StepFailed) so the function can catch it", async () => {
      const runId = await start("test/exhausted", "exhausted");
      const run = await runReaches(t.engine, runId, "completed", ticking(60_000));
      expect(run.output).toEqual({ caught: "nope" });
      expect(h.counter.get("exhausted")).toBe(2); // retries: 1 => two attempts
      expect(run.history.some((x) => x.type === "step.failed")).toBe(true);
    });

    it("fails at once on NonRetriableError (400 + x-inngest-no-retry)", async () => {
      const runId = await start("test/non-retriable", "non-retriable");
      const run = await runReaches(t.engine, runId, "failed");
      expect(h.counter.get("fatal")).toBe(1);
      expect(JSON.stringify(run.error)).toContain("fatal problem");
    });

    it("retries the function as configured, then fails and runs onFailure via inngest/function.failed", async () => {
      const runId = await start("test/failing", "failing");
      const run = await runReaches(t.engine, runId, "failed", ticking(60_000));
      expect(h.counter.get("failing:step")).toBe(1); // memoized across function-level retries
      expect(run.history.filter((x) => x.type === "run.retrying")).toHaveLength(2); // retries: 2
      expect((run.error as { message: string }).message).toBe("function-level failure");
      await until(() => h.counter.get("onFailure") === 1, { message: "onFailure did not run" });
      expect(h.failures[0]?.message).toBe("function-level failure");
      expect(h.failures[0]?.data).toMatchObject({ function_id: fid("failing"), run_id: runId });
      const handlers = await t.engine.listRuns({ function_id: fid("failing-failure") });
      expect(handlers).toHaveLength(1);
      expect(handlers[0]?.event_name).toBe("inngest/function.failed");
    });

    it("runs parallel steps (StepPlanned) once each and continues when all are done", async () => {
      const runId = await start("test/parallel", "parallel");
      const run = await runReaches(t.engine, runId, "completed");
      expect(run.output).toBe("XYZ");
      for (const k of ["x", "y", "z", "after"]) expect(h.counter.get(`par:${k}`)).toBe(1);
      expect(run.history.filter((x) => x.type === "step.planned").length).toBeGreaterThanOrEqual(3);
      // Parallelism ended, so the step after it runs inline again (no plan-then-run round trip), and is
      // checkpointed in checkpointing mode: disable_immediate_execution is cleared, as Inngest does.
      expect(run.history.filter((x) => x.type === "step.planned").map((x) => x.step_name)).not.toContain("after");
      const after = run.history.find((x) => x.type === "step.completed" && x.step_name === "after");
      expect(after?.detail ?? null).toEqual(execution === "checkpoint" ? { checkpointed: true } : null);
    });

    it("sleeps (Sleep, sleepUntil) on the engine clock", async () => {
      const until2 = new Date(t.clock.now() + 5 * HOUR).toISOString();
      const runId = await start("test/sleep", "sleeper", { until: until2 });
      await runReaches(t.engine, runId, "sleeping");
      expect(h.counter.get("sleep:between")).toBe(0);
      t.clock.advance(HOUR);
      await until(() => h.counter.get("sleep:between") === 1, { message: "did not wake after 1h" });
      await runReaches(t.engine, runId, "sleeping");
      expect(h.counter.get("sleep:after")).toBe(0);
      t.clock.advance(4 * HOUR);
      const run = await runReaches(t.engine, runId, "completed");
      expect(run.output).toBe("rested");
      expect([h.counter.get("sleep:before"), h.counter.get("sleep:between"), h.counter.get("sleep:after")]).toEqual([1, 1, 1]);
    });

    it("resumes a wait with the first matching event (CEL if: event = trigger, async = candidate)", async () => {
      const runId = await start("test/wait.start", "waiter", { id: "w1" });
      await runReaches(t.engine, runId, "waiting");
      await send("test/wait.approval", { id: "other", decision: "no" });
      await send("test/wait.approval", { id: "w1", decision: "yes" });
      const run = await runReaches(t.engine, runId, "completed");
      expect(run.output).toEqual({ got: { id: "w1", decision: "yes" } });
      expect(h.counter.get("wait:before:w1")).toBe(1);
    });

    it("times a 24h wait out with null, crossed in milliseconds on the manual clock", async () => {
      const runId = await start("test/wait.start", "waiter", { id: "w2" });
      await runReaches(t.engine, runId, "waiting");
      t.clock.advance(24 * HOUR - 1000);
      expect((await t.engine.getRun(runId))?.status).toBe("waiting");
      t.clock.advance(2000);
      const run = await runReaches(t.engine, runId, "completed");
      expect(run.output).toEqual({ got: null });
      expect(run.history.some((x) => x.type === "wait.timed_out")).toBe(true);
    });

    it("does not match an event sent before the wait was registered (the early-event race)", async () => {
      const hold = holdFor(h, "w3");
      const runId = await start("test/wait.start", "waiter", { id: "w3", hold: true });
      await hold.reached; // the step before the wait is running: the wait does not exist yet
      await send("test/wait.approval", { id: "w3", decision: "too early" });
      hold.open();
      await runReaches(t.engine, runId, "waiting");
      t.clock.advance(24 * HOUR + 1000);
      const run = await runReaches(t.engine, runId, "completed");
      expect(run.output).toEqual({ got: null });
    });

    it("invokes another function and memoizes its result or its error (InvokeFunction)", async () => {
      const runId = await start("test/parent", "parent");
      const run = await runReaches(t.engine, runId, "completed");
      expect(run.output).toMatchObject({ ok: { doubled: 42 } });
      expect(String((run.output as { failure: string }).failure)).toContain("child failed");
      const children = await t.engine.listRuns({ function_id: fid("child") });
      expect(children.filter((r) => r.event_name === "inngest/function.invoked")).toHaveLength(2);
    });

    it("sends events from a step (step.sendEvent) that trigger other functions", async () => {
      const runId = await start("test/send", "sender", { tag: "t1" });
      const run = await runReaches(t.engine, runId, "completed");
      expect(run.output).toBe(1);
      const received = await until(async () =>
        (await t.engine.listRuns({ function_id: fid("receiver"), status: "completed" })).find((r) => r.output === "t1"),
      );
      expect(received.event_name).toBe("test/sent");
      expect(h.counter.get("received")).toBe(1);
    });

    it("cancels a run on a matching cancelOn event", async () => {
      const other = await start("test/cancellable", "cancellable", { id: "keep" });
      const runId = await start("test/cancellable", "cancellable", { id: "c1" });
      await runReaches(t.engine, runId, "sleeping");
      await runReaches(t.engine, other, "sleeping");
      await send("test/cancel", { id: "c1" });
      const run = await runReaches(t.engine, runId, "cancelled");
      expect(run.history.at(-1)?.type).toBe("run.cancelled");
      t.clock.advance(3 * HOUR);
      await runReaches(t.engine, other, "completed");
      expect(h.counter.get("cancel:after:c1")).toBe(0);
      expect(h.counter.get("cancel:after:keep")).toBe(1);
    });

    it("fires cron triggers (TZ= prefix) on the engine clock", async () => {
      const before = await t.engine.listRuns({ function_id: fid("morning") });
      // Move to the next 09:00 in Paris (08:00 UTC in winter) and a little past it.
      const now = new Date(t.clock.now());
      const next = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate(), 8, 0, 0);
      const target = next > t.clock.now() ? next : next + 24 * HOUR;
      t.clock.set(target + 1000);
      const runs = await until(async () => {
        const r = await t.engine.listRuns({ function_id: fid("morning"), status: "completed" });
        return r.length > before.filter((x) => x.status === "completed").length ? r : undefined;
      });
      expect(runs[0]?.event_name).toBe("inngest/scheduled.timer");
      expect(runs[0]?.output).toBe("inngest/scheduled.timer");
    });

    it("starts runs only for events matching the trigger expression", async () => {
      const a = await send("test/filtered", { kind: "a" });
      const b = await send("test/filtered", { kind: "b" });
      const runB = await runFor(t.engine, b, fid("filtered"));
      await runReaches(t.engine, runB, "completed");
      expect(await t.engine.listRuns({ event_id: a })).toHaveLength(0);
    });

    it("limits concurrency per key, counting executing steps and not waiting runs", async () => {
      const ids = [];
      for (const user of ["u1", "u1", "u1", "u2", "u2"]) ids.push(await start("test/limited", "limited", { user }));
      // Every run reaches its wait: a waiting run does not hold its key's only slot.
      for (const id of ids) await runReaches(t.engine, id, "waiting");
      expect(h.concurrency.max.get("u1")).toBe(1);
      expect(h.concurrency.max.get("u2")).toBe(1);
      await send("test/limited.release", {});
      for (const id of ids) await runReaches(t.engine, id, "completed");
    });

    it("cancels a run that exceeds timeouts.finish", async () => {
      const runId = await start("test/slow", "slow");
      await runReaches(t.engine, runId, "sleeping");
      t.clock.advance(HOUR + 1000);
      const run = await runReaches(t.engine, runId, "cancelled");
      expect(JSON.stringify(run.error)).toContain("timeouts.finish");
      t.clock.advance(2 * HOUR);
      await new Promise((r) => setTimeout(r, 100));
      expect(h.counter.get("slow:2")).toBe(0);
    });

    it("drops an event whose id was seen in the last 24 hours (engine clock)", async () => {
      const first = await send("test/dedupe", {}, "dedupe-1");
      const second = await send("test/dedupe", {}, "dedupe-1");
      expect(second).not.toBe(first);
      await runReaches(t.engine, await runFor(t.engine, first, fid("dedupe")), "completed");
      expect(await t.engine.listRuns({ event_id: second })).toHaveLength(0);
      t.clock.advance(24 * HOUR + 1000);
      const third = await send("test/dedupe", {}, "dedupe-1");
      const run = await runReaches(t.engine, await runFor(t.engine, third, fid("dedupe")), "completed");
      expect(run.output).toBe("dedupe-1");
      expect(h.counter.get("dedupe")).toBe(2);
    });

    it("honours retry-after from RetryAfterError", async () => {
      const runId = await start("test/retry-after", "retry-after");
      const errored = await until(async () =>
        (await t.engine.getRun(runId))?.history.find((x) => x.type === "step.errored"),
      );
      const delay = Date.parse((errored.detail as { retry_at: string }).retry_at) - Date.parse(errored.at);
      expect(delay).toBe(10 * 60_000);
      t.clock.advance(10 * 60_000);
      const run = await runReaches(t.engine, runId, "completed");
      expect(run.output).toBe("done");
    });

    it("fails the sync, naming function and option, when a function uses an unsupported option", async () => {
      const other = new Inngest({ id: `${appId}-unsupported`, logger: quietLogger });
      const fns = [
        other.createFunction(
          { id: "throttled", throttle: { limit: 1, period: "1m" }, triggers: [{ event: "test/x" }] },
          async () => null,
        ),
        other.createFunction(
          { id: "debounced", debounce: { period: "5s" }, triggers: [{ event: "test/x" }] },
          async () => null,
        ),
      ];
      const bad = await serveApp(other, fns);
      try {
        const err = await t.engine.sync(bad.url).then(() => undefined, (e: Error) => e);
        expect(err?.message).toMatch(/throttled.*throttle/);
        expect(err?.message).toMatch(/debounced.*debounce/);
      } finally {
        await bad.close();
      }
    });

    it("serves the read API over HTTP", async () => {
      const eventId = await send("test/sequential", { input: "http" });
      const runId = await runFor(t.engine, eventId, fid("sequential"));
      await runReaches(t.engine, runId, "completed");
      const auth: Record<string, string> = mode === "signed" ? { authorization: `Bearer ${process.env["INNGEST_SIGNING_KEY"]}` } : {};
      const list = await (await fetch(`${t.engine.url}/v0/runs?event_id=${eventId}`, { headers: auth })).json();
      expect(list.data).toHaveLength(1);
      expect(list.data[0]).toMatchObject({ run_id: runId, status: "completed", function_id: fid("sequential") });
      const one = await (await fetch(`${t.engine.url}/v0/runs/${runId}`, { headers: auth })).json();
      expect(one.output.input).toBe("http");
      expect(one.history.length).toBeGreaterThan(3);
      const v1 = await (await fetch(`${t.engine.url}/v1/events/${eventId}/runs`, { headers: auth })).json();
      expect(v1.data[0]).toMatchObject({ run_id: runId, status: "Completed" });
      expect((await fetch(`${t.engine.url}/v0/runs/nope`, { headers: auth })).status).toBe(404);
    });
  });
}
