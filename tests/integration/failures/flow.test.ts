// Failures end to end through the app's real Inngest functions on the local engine (manual clock), the real database
// and the offline double: a 30 % storm of 529s that retries absorb, and a task that fails for good landing in the
// dead-letter queue exactly once, replayed through the API as a new linked task (409 on a second replay).
// npm test runs the storm over 12 tasks; NIGHTSHIFT_FAULT_TASKS=40 runs the issue's full 40 (same assertions).
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { scenarioMarker, type ClaudeDouble } from "../../../local/claude/server";
import { ManualClock } from "../../../local/engine";
import { startAppFixture, type AppFixture } from "../../support/app-fixture";
import { until } from "../../support/engine-harness";
import type { TestSupabase } from "../../support/supabase";

const TASKS = Number(process.env["NIGHTSHIFT_FAULT_TASKS"] ?? 12);

let fx: AppFixture;
let sb: TestSupabase;
let double: ClaudeDouble;
let clock: ManualClock;
let apiKey: string;
let submitTask: typeof import("@/lib/tasks/submit").submitTask;
let listRoute: typeof import("@/app/api/dead-letters/route");
let oneRoute: typeof import("@/app/api/dead-letters/[id]/route");
let replayRoute: typeof import("@/app/api/dead-letters/[id]/replay/route");
let discardRoute: typeof import("@/app/api/dead-letters/[id]/discard/route");

beforeAll(async () => {
  clock = new ManualClock(Date.now());
  fx = await startAppFixture({ clock, double: { onEngineClock: true } });
  ({ sb, double } = fx);
  ({ submitTask } = await import("@/lib/tasks/submit"));
  listRoute = await import("@/app/api/dead-letters/route");
  oneRoute = await import("@/app/api/dead-letters/[id]/route");
  replayRoute = await import("@/app/api/dead-letters/[id]/replay/route");
  discardRoute = await import("@/app/api/dead-letters/[id]/discard/route");
  const { createApiKey } = await import("@/lib/api-keys");
  apiKey = (await createApiKey(sb.admin, "failure tests")).key;
  await sb.admin.from("agents").update({ concurrency: 8, daily_budget_micros: 50_000_000 }).eq("id", "research");
}, 60_000);

afterAll(() => fx?.stop());

const ENDED = ["completed", "failed", "stopped", "rejected", "cancelled"];

async function tasks(ids: string[]) {
  const { data } = await sb.admin.from("tasks").select("id,status,status_reason,cost_micros,error,replay_of").in("id", ids);
  return data!;
}

const allEnded = (ids: string[], tick = () => clock.advance(15_000)) =>
  until(async () => {
    const t = await tasks(ids);
    return t.length === ids.length && t.every((x) => ENDED.includes(x.status)) ? t : undefined;
  }, { timeoutMs: 60_000 + TASKS * 5_000, tick, message: "the tasks did not all end" });

function call(method: "GET" | "POST", path: string, opts: { body?: unknown; headers?: Record<string, string> } = {}): Request {
  const headers: Record<string, string> = { authorization: `Bearer ${apiKey}`, ...opts.headers };
  if (opts.body !== undefined) headers["content-type"] = "application/json";
  return new Request(`http://localhost:3000${path}`, { method, headers, body: opts.body === undefined ? undefined : typeof opts.body === "string" ? opts.body : JSON.stringify(opts.body) });
}
const params = (id: string) => ({ params: Promise.resolve({ id }) });

describe("a 30 % storm of 529s", () => {
  test(`${TASKS} tasks all complete, each answered call paid once, model requests within 1.5x the turns`, async () => {
    double.faults.add({ kind: "errors", rate: 0.3, status: 529 });
    const ids: string[] = [];
    for (let i = 0; i < TASKS; i++) {
      ids.push((await submitTask(sb.admin, { agent: "research", prompt: `${scenarioMarker(`storm-${i}`)} Summarize item ${i}.` }, null, null)).taskId);
    }
    const done = await allEnded(ids);
    double.faults.clear();
    expect(done.filter((t) => t.status !== "completed")).toEqual([]);

    const calls = double.calls((c) => c.kind === "messages" && (c.scenario ?? "").startsWith("storm-"));
    const answered = calls.filter((c) => c.status === 200);
    const { data: turns } = await sb.admin.from("task_steps").select("task_id,cost_micros").in("task_id", ids).eq("kind", "model").eq("status", "completed");
    expect(answered.length).toBe(turns!.length);
    expect(calls.filter((c) => c.status === 529).length).toBeGreaterThan(0);
    expect(calls.length).toBeLessThanOrEqual(Math.floor(1.5 * turns!.length));
    // The cost of each answered call is counted once: the settled ledger, the timeline and the tasks agree.
    const { data: ledger } = await sb.admin.from("budget_reservations").select("status,actual_micros").in("task_id", ids);
    expect(ledger!.filter((r) => r.status === "reserved")).toEqual([]);
    const settled = ledger!.filter((r) => r.status === "settled");
    expect(settled).toHaveLength(answered.length);
    const sum = (xs: Array<number | string | null>) => xs.reduce<number>((a, x) => a + Number(x ?? 0), 0);
    expect(sum(settled.map((r) => r.actual_micros))).toBe(sum(done.map((t) => t.cost_micros)));
    expect(sum(turns!.map((t) => t.cost_micros))).toBe(sum(done.map((t) => t.cost_micros)));
    const { count } = await sb.admin.from("dead_letters").select("id", { count: "exact", head: true });
    expect(count).toBe(0);
  }, 60_000 + TASKS * 5_000);
});

describe("a task that fails for good", () => {
  test("lands in the dead-letter queue once, in words; replay runs it again as a linked task; a second replay is 409", async () => {
    const scenario = "dl-bad-request";
    double.script(scenario, [{ error: { status: 400, message: "messages: text content blocks must be non-empty" } }]);
    const { taskId } = await submitTask(sb.admin, { agent: "outreach", prompt: `${scenarioMarker(scenario)} Draft the note.`, input: { to: "ana" } }, null, null);
    const [failed] = await allEnded([taskId]);
    expect(failed!.status).toBe("failed");
    expect(failed!.status_reason).toBe(
      "Claude refused the request as invalid (400): messages: text content blocks must be non-empty. Not retried: it would fail the same way again.",
    );
    expect(double.calls({ scenario, kind: "messages" })).toHaveLength(1);

    const list = await (await listRoute.GET(call("GET", "/api/dead-letters?status=pending&agent=outreach"))).json();
    expect(list.dead_letters).toHaveLength(1);
    const dl = list.dead_letters[0];
    expect(dl).toMatchObject({
      task_id: taskId,
      agent: "outreach",
      input: { to: "ana" },
      failure_kind: "provider_refused",
      error_message: "Claude refused the request as invalid (400): messages: text content blocks must be non-empty.",
      failed_step: "turn-1",
      attempts: 1,
      status: "pending",
      replayed_by: null,
    });
    expect(dl.last_steps.map((s: { step_id: string }) => s.step_id)).toEqual(["turn-1"]);
    expect((await oneRoute.GET(call("GET", `/api/dead-letters/${dl.id}`), params(dl.id))).status).toBe(200);

    // Bad input first: unknown id 404, malformed body 400 naming the field.
    expect((await replayRoute.POST(call("POST", "/api/dead-letters/00000000-0000-4000-8000-000000000000/replay"), params("00000000-0000-4000-8000-000000000000"))).status).toBe(404);
    const bad = await replayRoute.POST(call("POST", `/api/dead-letters/${dl.id}/replay`, { body: { prompt: 42 } }), params(dl.id));
    expect(bad.status).toBe(400);
    expect((await bad.json()).error.details[0].field).toBe("prompt");
    const unauth = await replayRoute.POST(new Request(`http://localhost:3000/api/dead-letters/${dl.id}/replay`, { method: "POST" }), params(dl.id));
    expect(unauth.status).toBe(401);

    // Replay with an edited prompt (the double answers this time), twice with the same Idempotency-Key: one task.
    const replay = () =>
      replayRoute.POST(call("POST", `/api/dead-letters/${dl.id}/replay`, { body: { prompt: `${scenarioMarker("dl-replay")} Draft the note, shorter.` }, headers: { "idempotency-key": "morning-1" } }), params(dl.id));
    const first = await replay();
    expect(first.status).toBe(202);
    const { task_id: newTask } = await first.json();
    const again = await replay();
    expect(again.status).toBe(202);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    expect((await again.json()).task_id).toBe(newTask);
    const second = await replayRoute.POST(call("POST", `/api/dead-letters/${dl.id}/replay`), params(dl.id));
    expect(second.status).toBe(409);
    expect(await second.json()).toEqual({
      error: { code: "already_replayed", message: `This dead letter was already replayed as task ${newTask}`, details: { status: "replayed", replayed_by: newTask } },
    });
    const discard = await discardRoute.POST(call("POST", `/api/dead-letters/${dl.id}/discard`, { body: { note: "x" } }), params(dl.id));
    expect(discard.status).toBe(409);
    expect((await discard.json()).error.code).toBe("already_replayed");

    const [replayed] = await allEnded([newTask]);
    expect(replayed).toMatchObject({ status: "completed", replay_of: taskId });
    const after = await (await oneRoute.GET(call("GET", `/api/dead-letters/${dl.id}`), params(dl.id))).json();
    expect(after).toMatchObject({ status: "replayed", replayed_by: newTask });
    const { count } = await sb.admin.from("dead_letters").select("id", { count: "exact", head: true }).eq("task_id", taskId);
    expect(count).toBe(1);
  });

  test("discard closes an entry with its note; replay of a discarded entry is 409 naming it", async () => {
    const scenario = "dl-discard";
    double.script(scenario, [{ error: { status: 404, message: "model: not found" } }]);
    const { taskId } = await submitTask(sb.admin, { agent: "outreach", prompt: `${scenarioMarker(scenario)} Draft.` }, null, null);
    await allEnded([taskId]);
    const { data: dl } = await sb.admin.from("dead_letters").select("id,summary").eq("task_id", taskId).single();
    expect(dl!.summary).toBe("Claude does not know what we asked for (404), e.g. an unknown model.");
    const res = await discardRoute.POST(call("POST", `/api/dead-letters/${dl!.id}/discard`, { body: { note: "model retired" } }), params(dl!.id));
    expect(res.status).toBe(200);
    const replay = await replayRoute.POST(call("POST", `/api/dead-letters/${dl!.id}/replay`), params(dl!.id));
    expect(replay.status).toBe(409);
    expect((await replay.json()).error).toMatchObject({ code: "already_discarded", details: { status: "discarded" } });
    const list = await (await listRoute.GET(call("GET", "/api/dead-letters?status=discarded"))).json();
    expect(list.dead_letters.map((d: { id: string; discard_note: string }) => [d.id, d.discard_note])).toEqual([[dl!.id, "model retired"]]);
    expect((await listRoute.GET(call("GET", "/api/dead-letters?status=lost"))).status).toBe(400);
  });
});
