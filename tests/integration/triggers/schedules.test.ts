// Schedules as data on the real database: fire_schedule under concurrency (one task per firing), the dispatcher's
// plan across a daylight-saving change and after downtime (one catch-up firing, the rest recorded as skipped), the
// API routes, and the real every-minute cron function on the local engine starting a due schedule's task.
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { ManualClock } from "../../../local/engine";
import { startAppFixture, type AppFixture } from "../../support/app-fixture";
import { quietTick, until, type TestEngine } from "../../support/engine-harness";
import type { TestSupabase } from "../../support/supabase";

let fx: AppFixture;
let sb: TestSupabase;
let te: TestEngine;
let clock: ManualClock;
let svc: typeof import("@/lib/schedules/service");
let apiKey: string;
let routes: {
  list: typeof import("@/app/api/schedules/route");
  one: typeof import("@/app/api/schedules/[id]/route");
  run: typeof import("@/app/api/schedules/[id]/run/route");
};

beforeAll(async () => {
  clock = new ManualClock(Date.now());
  // Only the every-minute dispatcher is served (no model call completes here; runs are only started). Its cron fires
  // only when the last test moves the manual clock, so the tests before it see no dispatcher pass of their own.
  fx = await startAppFixture({
    clock,
    serve: async () => ({ functions: [(await import("@/inngest/functions/dispatch-schedules")).dispatchSchedules] }),
  });
  ({ sb, te } = fx);
  svc = await import("@/lib/schedules/service");
  routes = {
    list: await import("@/app/api/schedules/route"),
    one: await import("@/app/api/schedules/[id]/route"),
    run: await import("@/app/api/schedules/[id]/run/route"),
  };
  apiKey = (await (await import("@/lib/api-keys")).createApiKey(sb.admin, "schedule tests")).key;
});

afterAll(async () => {
  await fx?.stop();
});

async function schedule(name: string, cron: string, timezone: string, nextRunAt: string) {
  const { data, error } = await sb.admin
    .from("schedules")
    .insert({ name, agent_id: "research", cron, timezone, prompt_template: `${name} for {{date}}`, next_run_at: nextRunAt })
    .select("id")
    .single();
  expect(error).toBeNull();
  return data!.id;
}

async function firings(id: string) {
  const { data } = await sb.admin.from("schedule_firings").select("scheduled_for,task_id,skipped,skipped_from").eq("schedule_id", id).order("scheduled_for");
  return data ?? [];
}

/** A dispatcher pass at `now` (what the cron function does, minus starting the runs), over one schedule. */
async function dispatch(now: Date, id: string) {
  const out = [];
  for (const f of await svc.dueFirings(sb.admin, now)) if (f.schedule_id === id) out.push(await svc.fireSchedule(sb.admin, f));
  return out;
}

describe("firing", () => {
  test("20 dispatchers firing the same firing at once make exactly one task", async () => {
    const id = await schedule("concurrent", "0 2 * * *", "UTC", "2030-02-01T02:00:00Z");
    const [plan] = (await svc.dueFirings(sb.admin, new Date("2030-02-01T02:00:30Z"))).filter((f) => f.schedule_id === id);
    const results = await Promise.all(Array.from({ length: 20 }, () => svc.fireSchedule(sb.admin, plan!)));
    expect(results.filter((r) => r.outcome === "created")).toHaveLength(1);
    expect(results.every((r) => r.outcome !== "created" || r.task_id)).toBe(true);
    const { data: tasks } = await sb.admin.from("tasks").select("id,prompt").like("idempotency_key", `schedule:${id}:%`);
    expect(tasks).toEqual([{ id: results.find((r) => r.outcome === "created")!.task_id, prompt: "concurrent for 2030-02-01" }]);
    // A retried firing (same plan again, later) finds its task instead of making another.
    expect(await svc.fireSchedule(sb.admin, plan!)).toMatchObject({ outcome: "replayed", task_id: tasks![0]!.id });
  });

  test("a 02:30 New York schedule fires once a day across the spring-forward day", async () => {
    const { nextFiring } = await import("@/lib/schedules/cron");
    const first = nextFiring("30 2 * * *", "America/New_York", new Date("2027-03-12T12:00:00Z"))!;
    const id = await schedule("dst", "30 2 * * *", "America/New_York", first.toISOString());
    // The dispatcher every 20 minutes for four days.
    for (let t = Date.parse("2027-03-12T12:00:00Z"); t <= Date.parse("2027-03-16T12:00:00Z"); t += 20 * 60_000) await dispatch(new Date(t), id);
    expect((await firings(id)).map((f) => f.scheduled_for)).toEqual([
      "2027-03-13T07:30:00+00:00",
      "2027-03-14T07:00:00+00:00",
      "2027-03-15T06:30:00+00:00",
      "2027-03-16T06:30:00+00:00",
    ]);
  });

  test("after downtime (a stopped stack) the missed firing runs once, and what it skipped is recorded", async () => {
    const id = await schedule("catch-up", "0 2 * * *", "UTC", "2031-01-01T02:00:00Z");
    const back = new Date("2031-01-04T10:00:00Z");
    const first = await dispatch(back, id);
    expect(first.filter((r) => r.outcome === "created")).toHaveLength(1);
    expect(await dispatch(back, id)).toEqual([]); // the next pass finds nothing due
    expect(await firings(id)).toMatchObject([{ scheduled_for: "2031-01-04T02:00:00+00:00", skipped: 3, skipped_from: "2031-01-01T02:00:00+00:00" }]);
    const { data: s } = await sb.admin.from("schedules").select("next_run_at,skipped_total,last_task_id").eq("id", id).single();
    expect(s).toMatchObject({ next_run_at: "2031-01-05T02:00:00+00:00", skipped_total: 3 });
    expect(s!.last_task_id).toBe(first[0]!.task_id);
  });
});

describe("API", () => {
  const call = (method: string, path: string, body?: unknown) =>
    new Request(`http://app.test${path}`, {
      method,
      headers: { authorization: `Bearer ${apiKey}`, ...(body ? { "content-type": "application/json" } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
  const params = (id: string) => ({ params: Promise.resolve({ id }) });

  test("create, read, disable, run now, delete; bad cron or time zone is a 400 naming it", async () => {
    const badCron = await routes.list.POST(call("POST", "/api/schedules", { name: "x", agent: "research", cron: "61 * * * *", prompt: "p" }));
    expect(badCron.status).toBe(400);
    expect(((await badCron.json()) as { error: { message: string } }).error.message).toMatch(/^Invalid request body: cron: invalid cron expression/);
    const badTz = await routes.list.POST(call("POST", "/api/schedules", { name: "x", agent: "research", cron: "0 2 * * *", timezone: "Mars/Base", prompt: "p" }));
    expect(badTz.status).toBe(400);
    expect(((await badTz.json()) as { error: { details: { field: string }[] } }).error.details[0]!.field).toBe("timezone");

    const created = await routes.list.POST(
      call("POST", "/api/schedules", { name: "api nightly", agent: "research", cron: "0 2 * * *", timezone: "Europe/Berlin", prompt: "Research for {{date}}" }),
    );
    expect(created.status).toBe(201);
    const s = (await created.json()) as { id: string; next_run_at: string; enabled: boolean };
    expect(s.enabled).toBe(true);
    expect(new Date(s.next_run_at).getTime()).toBeGreaterThan(Date.now());
    // 02:00 in Berlin is 01:00 or 00:00 UTC.
    expect(new Date(s.next_run_at).getUTCHours()).toBeLessThanOrEqual(1);

    const off = await routes.one.PATCH(call("PATCH", `/api/schedules/${s.id}`, { enabled: false }), params(s.id));
    expect(await off.json()).toMatchObject({ enabled: false, next_run_at: null });

    const run = await routes.run.POST(call("POST", `/api/schedules/${s.id}/run`), params(s.id));
    expect(run.status).toBe(202);
    const { task_id } = (await run.json()) as { task_id: string };
    const got = (await (await routes.one.GET(call("GET", `/api/schedules/${s.id}`), params(s.id))).json()) as { last_task: { task_id: string } };
    expect(got.last_task.task_id).toBe(task_id);

    const listed = (await (await routes.list.GET(call("GET", "/api/schedules"))).json()) as { schedules: { name: string; enabled: boolean }[] };
    // The seeded side-venture schedules are there, disabled.
    expect(listed.schedules.filter((x) => ["Nightly research", "Morning content drafts", "Monday outreach batch"].includes(x.name))).toEqual([
      expect.objectContaining({ enabled: false }),
      expect.objectContaining({ enabled: false }),
      expect.objectContaining({ enabled: false }),
    ]);
    expect((await routes.one.DELETE(call("DELETE", `/api/schedules/${s.id}`), params(s.id))).status).toBe(204);
    expect((await routes.one.GET(call("GET", `/api/schedules/${s.id}`), params(s.id))).status).toBe(404);
  });
});

test("the every-minute cron function fires a due schedule and starts its task's run", async () => {
  const id = await schedule("engine", "* * * * *", "UTC", new Date(Date.now() - 30_000).toISOString());
  const fired = await until(async () => (await firings(id))[0], { tick: quietTick(te.engine, clock, 60_000), message: "the cron function did not fire", timeoutMs: 90_000 });
  expect(fired.task_id).toBeTruthy();
  // Its start event was recorded in the outbox by the same transaction.
  const { data: ev } = await sb.admin.from("outbox").select("name,data").eq("event_id", `task-run-${fired.task_id}`).single();
  expect(ev).toMatchObject({ name: "task/run.requested", data: { task_id: fired.task_id, agent: "research" } });
  await until(async () => (await te.engine.listRuns({ function_id: "nightshift-dispatch-schedules" })).some((r) => r.status === "completed"), {
    tick: quietTick(te.engine, clock, 1000),
    timeoutMs: 90_000,
    message: "the dispatcher run did not complete",
  });
});
