// A schedule across a real restart of the stack: `next start` and the local engine (separate processes, the engine
// keeping its runs and cron timers in Postgres) are killed with SIGKILL, hours of firings are missed while they are
// down, and after the restart the every-minute dispatcher runs the missed firing exactly once, records the firings it
// skipped, moves the schedule to its next firing, and the firing's task runs to completion.
import { afterAll, beforeAll, expect, test } from "vitest";
import { scenarioMarker } from "../../local/claude/server";
import { startAppStack, waitUntil, type AppStack } from "../support/app-stack";

const HOUR = 3_600_000;
let stack: AppStack;

beforeAll(async () => {
  stack = await startAppStack();
});
afterAll(async () => {
  await stack?.stop();
});

test("after a crash and restart, a missed hourly schedule fires once, with the skipped firings recorded", { timeout: 300_000 }, async () => {
  const scenario = "e2e-schedule-restart";
  stack.double.script(scenario, [{ text: "Nightly findings." }]);
  const created = await fetch(`${stack.appUrl}/api/schedules`, {
    method: "POST",
    headers: { authorization: `Bearer ${stack.apiKey}`, "content-type": "application/json" },
    body: JSON.stringify({ name: "hourly research", agent: "research", cron: "0 * * * *", timezone: "UTC", prompt: `${scenarioMarker(scenario)} Research for {{date}}`, enabled: false }),
  });
  expect(created.status).toBe(201);
  const { id } = (await created.json()) as { id: string };

  // Power cut; while the stack is down, three hours go by: the schedule (switched on now, so it cannot have fired
  // before the crash) finds its next firing 3 h in the past.
  await stack.crash();
  const missedFrom = new Date(Math.floor(Date.now() / HOUR) * HOUR - 3 * HOUR).toISOString();
  const moved = await stack.sb.admin.from("schedules").update({ enabled: true, next_run_at: missedFrom }).eq("id", id);
  expect(moved.error).toBeNull();
  await stack.restart();

  const firings = async () =>
    (await stack.sb.admin.from("schedule_firings").select("scheduled_for,task_id,skipped,skipped_from").eq("schedule_id", id)).data ?? [];
  // The dispatcher runs every minute of real time: wait for its first pass after the restart.
  await waitUntil(async () => (await firings()).length > 0, 150_000, "the dispatcher to fire the missed schedule", stack.output().split("\n"));
  const [firing] = await firings();
  expect(Date.parse(firing!.skipped_from!)).toBe(Date.parse(missedFrom));
  // The latest missed firing runs (the current hour's, or the next one's if the hour turned meanwhile); the others
  // are counted as skipped, not run.
  const ran = Date.parse(firing!.scheduled_for);
  expect(ran).toBeGreaterThanOrEqual(Date.parse(missedFrom) + 3 * HOUR);
  expect(firing!.skipped).toBe((ran - Date.parse(missedFrom)) / HOUR);
  const { data: s } = await stack.sb.admin.from("schedules").select("next_run_at,last_task_id,skipped_total").eq("id", id).single();
  expect(Date.parse(s!.next_run_at!)).toBe(ran + HOUR);
  expect(s).toMatchObject({ last_task_id: firing!.task_id, skipped_total: firing!.skipped });

  // The firing's task runs on the restarted stack.
  await waitUntil(
    async () => {
      const r = await fetch(`${stack.appUrl}/api/tasks/${firing!.task_id}`, { headers: { authorization: `Bearer ${stack.apiKey}` } });
      return ((await r.json()) as { status: string }).status === "completed";
    },
    60_000,
    "the scheduled task to complete",
    stack.output().split("\n"),
  );
  // Once: a dispatcher pass that started after the firing finds nothing more to fire.
  const firedAt = Date.now();
  await waitUntil(
    async () => {
      const runs = (await (await fetch(`${stack.engineUrl}/v0/runs?function_id=nightshift-dispatch-schedules&status=completed`)).json()) as {
        data: { started_at: string | null }[];
      };
      return runs.data.some((r) => r.started_at !== null && Date.parse(r.started_at) > firedAt);
    },
    150_000,
    "another dispatcher pass",
    stack.output().split("\n"),
  );
  expect(await firings()).toHaveLength(1);
  const { count } = await stack.sb.admin.from("tasks").select("id", { count: "exact", head: true }).like("idempotency_key", `schedule:${id}:%`);
  expect(count).toBe(1);
  expect(stack.double.calls({ scenario, kind: "messages" })).toHaveLength(1);
});
