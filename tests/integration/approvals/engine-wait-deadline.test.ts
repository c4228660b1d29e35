// The SDK lets `step.waitForEvent` (and `step.invoke`) take an absolute deadline — a `Date` — which it sends as
// an ISO timestamp in `opts.timeout` (its `timeStr`). awaitApproval waits until the approval's `expires_at` this
// way, so the engine's deadline and the database's are the same instant. The engine used to parse every wait
// timeout as a duration and failed such a run ("invalid duration"); it now reads both forms, as for sleeps.
import { Inngest } from "inngest";
import { afterAll, beforeAll, expect, test } from "vitest";
import {
  quietLogger,
  runFor,
  runReaches,
  serveApp,
  startTestEngine,
  type ServedApp,
  type TestEngine,
} from "../../support/engine-harness";

const HOUR = 3_600_000;
let t: TestEngine;
let app: ServedApp;
let inngest: Inngest.Any;
const saved = { ...process.env };

beforeAll(async () => {
  t = await startTestEngine();
  for (const k of ["INNGEST_DEV", "INNGEST_BASE_URL", "INNGEST_SIGNING_KEY", "INNGEST_EVENT_KEY"]) delete process.env[k];
  Object.assign(process.env, t.engine.appEnv());
  inngest = new Inngest({ id: "wait-deadline", logger: quietLogger });
  const fn = inngest.createFunction({ id: "deadline", triggers: [{ event: "test/deadline.start" }] }, async ({ event, step }) => {
    const deadline = new Date(String(event.data["deadline"]));
    const got = await step.waitForEvent("wait", {
      event: "test/deadline.done",
      timeout: deadline,
      if: `async.data.id == '${String(event.data["id"])}'`,
    });
    return { got: got?.data ?? null };
  });
  app = await serveApp(inngest, [fn]);
  await t.engine.sync(app.url);
});

afterAll(async () => {
  await app?.close();
  await t?.close();
  process.env = saved;
});

test("a wait with a Date timeout times out at that instant on the engine clock", async () => {
  const deadline = new Date(t.clock.now() + 24 * HOUR);
  const { ids } = await inngest.send({ name: "test/deadline.start", data: { id: "d1", deadline: deadline.toISOString() } });
  const runId = await runFor(t.engine, ids[0]!, "wait-deadline-deadline");
  const waiting = await runReaches(t.engine, runId, ["waiting", "failed"]);
  expect(waiting.status, JSON.stringify(waiting.error)).toBe("waiting");
  const registered = waiting.history.find((h) => h.type === "step.waiting");
  expect((registered?.detail as { timeout_at: string }).timeout_at).toBe(deadline.toISOString());
  t.clock.advance(24 * HOUR - 1000);
  expect((await t.engine.getRun(runId))?.status).toBe("waiting");
  t.clock.advance(1000);
  const run = await runReaches(t.engine, runId, "completed");
  expect(run.output).toEqual({ got: null });
});

test("a wait with a Date timeout still matches an event before the deadline", async () => {
  const deadline = new Date(t.clock.now() + 24 * HOUR);
  const { ids } = await inngest.send({ name: "test/deadline.start", data: { id: "d2", deadline: deadline.toISOString() } });
  const runId = await runFor(t.engine, ids[0]!, "wait-deadline-deadline");
  await runReaches(t.engine, runId, "waiting");
  await inngest.send({ name: "test/deadline.done", data: { id: "d2" } });
  const run = await runReaches(t.engine, runId, "completed");
  expect(run.output).toEqual({ got: { id: "d2" } });
});
