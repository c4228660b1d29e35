// The agent runtime through the app's real Inngest functions, served by the real SDK over HTTP and run by the
// local engine (real retries, memoized steps, a manual clock), on the real database and the offline Claude double.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { scenarioMarker, type ClaudeDouble } from "../../local/claude/server";
import { ManualClock } from "../../local/engine";
import { startCaptureServer, type CaptureServer } from "../support/capture-server";
import { startAppFixture, type AppFixture } from "../support/app-fixture";
import { until, type TestEngine } from "../support/engine-harness";
import type { TestSupabase } from "../support/supabase";

let fx: AppFixture;
let sb: TestSupabase;
let double: ClaudeDouble;
let resend: CaptureServer;
let pages: Server;
let pagesUrl: string;
let te: TestEngine;
let clock: ManualClock;
const finishedEvents: { task_id: string; status: string; cost_micros: number }[] = [];
let submitTask: typeof import("@/lib/tasks/submit").submitTask;
let insertTask: typeof import("@/lib/tasks/service").insertTask;

beforeAll(async () => {
  resend = await startCaptureServer();
  pages = createServer((req, res) => {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end(`<html><head><title>Durable execution</title></head><body><h1>Checkpoints</h1>
      <p>Every step is memoized, so a crash at minute 29 does not start over.</p><script>var x=1</script></body></html>`);
  });
  await new Promise<void>((r) => pages.listen(0, "127.0.0.1", () => r()));
  pagesUrl = `http://127.0.0.1:${(pages.address() as AddressInfo).port}`;
  clock = new ManualClock(Date.now());
  fx = await startAppFixture({
    clock,
    env: { RESEND_API_KEY: "re_test_key", RESEND_BASE_URL: resend.url, NIGHTSHIFT_FETCH_ALLOW: "127.0.0.1" },
    // Another app's function reacting to finished work, through the public event catalog.
    extraFunctions: (inngest) => [
      inngest.createFunction({ id: "test-finished-listener", triggers: [{ event: "task/run.finished" }] }, async ({ event }) => {
        finishedEvents.push(event.data as (typeof finishedEvents)[number]);
      }),
    ],
  });
  ({ sb, double, te } = fx);
  ({ submitTask } = await import("@/lib/tasks/submit"));
  ({ insertTask } = await import("@/lib/tasks/service"));
});

afterAll(async () => {
  await fx?.stop();
  await new Promise((r) => pages?.close(r));
  await resend?.stop();
});

async function run(agent: string, scenario: string, prompt = "Work on it.") {
  const t = await submitTask(sb.admin, { agent, prompt: `${scenarioMarker(scenario)} ${prompt}` }, null, null);
  return t.taskId;
}

async function task(taskId: string) {
  const { data, error } = await sb.admin.from("tasks").select("*").eq("id", taskId).single();
  if (error) throw error;
  return data;
}

const finished = (taskId: string, tick?: () => void) =>
  until(async () => {
    const t = await task(taskId);
    return ["completed", "failed", "stopped", "rejected"].includes(t.status) ? t : undefined;
  }, { timeoutMs: 30_000, tick, message: `task ${taskId} did not finish` });

async function steps(taskId: string) {
  const { data } = await sb.admin.from("task_steps").select("step_id,kind,status").eq("task_id", taskId).order("id");
  return data!;
}

describe("agent runtime", () => {
  test("a tool call's result flows back to the model in the next turn", async () => {
    const scenario = "rt-tools";
    double.script(scenario, [
      { tool_use: { name: "web_fetch", input: { url: `${pagesUrl}/article` } } },
      { text: "Summary: checkpoints stop work from being lost." },
    ]);
    const taskId = await run("research", scenario, "Read the article and summarize it.");
    const t = await finished(taskId);

    expect(t.status).toBe("completed");
    expect((t.result as { text: string }).text).toContain("Summary: checkpoints");
    expect((await steps(taskId)).map((s) => [s.step_id, s.kind, s.status])).toEqual([
      ["turn-1", "model", "completed"],
      ["tool-1-web_fetch", "tool", "completed"],
      ["turn-2", "model", "completed"],
    ]);
    const calls = double.calls({ scenario, kind: "messages" });
    expect(calls).toHaveLength(2);
    const second = JSON.stringify(calls[1]!.body);
    expect(second).toContain("tool_result");
    expect(second).toContain("Every step is memoized, so a crash at minute 29 does not start over.");
    expect(second).not.toContain("var x=1");
    const emitted = await until(() => finishedEvents.find((e) => e.task_id === taskId));
    expect(emitted).toEqual({ task_id: taskId, agent: "research", status: "completed", cost_micros: Number(t.cost_micros) });
  });

  test("a 429 followed by success is paid once", async () => {
    const scenario = "rt-429";
    double.script(scenario, [{ error: { status: 429, retry_after_s: 30 } }, { text: "Paid once." }]);
    const taskId = await run("research", scenario);
    const t = await finished(taskId, () => clock.advance(10_000));

    expect(t.status).toBe("completed");
    expect(double.calls({ scenario, kind: "messages" }).map((c) => c.status)).toEqual([429, 200]);
    const { data: ledger } = await sb.admin
      .from("budget_reservations")
      .select("step_id,status,actual_micros")
      .eq("task_id", taskId)
      .order("created_at");
    // The 429 was not billed: its reservation was released while the task waited out retry-after (holding no budget).
    expect(ledger).toHaveLength(2);
    expect(ledger![0]).toMatchObject({ step_id: "turn-1", status: "released" });
    expect(ledger![1]).toMatchObject({ step_id: "turn-1", status: "settled" });
    expect(Number(t.cost_micros)).toBe(Number(ledger![1]!.actual_micros));
    expect(Number(t.cost_micros)).toBeGreaterThan(0);
  });

  test("a side-effecting tool under a retried step sends one email", async () => {
    const scenario = "rt-email";
    double.script(scenario, [
      { tool_use: { name: "send_email", input: { to: ["founder@example.com"], subject: "Morning report", text: "All done." } } },
      { text: "Email sent." },
    ]);
    const before = resend.requests.length;
    resend.failNext(1, 500); // Resend is down for the first attempt: the tool step is retried by the engine.
    const taskId = await run("outreach", scenario, "Email the founder the report.");
    const t = await finished(taskId, () => clock.advance(60_000));

    expect(t.status).toBe("completed");
    const posts = resend.requests.slice(before).filter((r) => r.method === "POST" && r.url === "/emails");
    expect(posts).toHaveLength(2); // one refused with 500, one accepted
    expect(new Set(posts.map((p) => p.headers["idempotency-key"])).size).toBe(1);
    const { data: effects } = await sb.admin.from("side_effects").select("tool,status").eq("task_id", taskId);
    expect(effects).toEqual([{ tool: "send_email", status: "completed" }]);
    // The model turn after the email, and a replay of the run, never send again.
    expect(double.calls({ scenario, kind: "messages" })).toHaveLength(2);
  });

  test("budget exhaustion moves the task to waiting_budget; it resumes in the next window", async () => {
    // A time zone where it is around noon now, so "today" and "tomorrow" are unambiguous whatever the hour.
    const offset = 12 - new Date().getUTCHours(); // local = UTC + offset
    const tz = offset === 0 ? "Etc/UTC" : `Etc/GMT${offset > 0 ? "-" : "+"}${Math.abs(offset)}`;
    // A fresh agent (agents are data), so no other test's spend shares its window.
    const ins = await sb.admin.from("agents").insert({
      id: "night_writer",
      display_name: "Night writer",
      model: "claude-haiku-4-5",
      system_prompt: "You write short notes.",
      daily_budget_micros: 1_000_000,
      budget_timezone: tz,
    });
    expect(ins.error).toBeNull();
    // Another task (recorded, never queued, so it cannot settle and refund) holds all but $0.001 of today's budget.
    const other = await insertTask(sb.admin, { agent: "night_writer", prompt: "earlier work" }, null, null);
    const { data: pre, error } = await sb.admin.rpc("reserve_budget", {
      p_agent_id: "night_writer",
      p_task_id: other.taskId,
      p_step_id: "turn-1",
      p_model: "claude-haiku-4-5",
      p_amount_micros: 999_000,
    });
    expect(error).toBeNull();
    expect(pre![0]!.ok).toBe(true);
    // Settled (a refusal by money in flight would wait for a settle instead of the next window).
    const settled = await sb.admin.rpc("settle_budget", { p_task_id: other.taskId, p_step_id: "turn-1", p_actual_micros: 999_000 });
    expect(settled.error).toBeNull();

    const scenario = "rt-budget";
    double.script(scenario, [{ text: "Written after midnight." }]);
    const taskId = await run("night_writer", scenario, "Write the email.");

    const waiting = await until(async () => {
      const t = await task(taskId);
      const { count } = await sb.admin.from("notifications").select("id", { count: "exact", head: true }).eq("agent_id", "night_writer");
      return t.status === "waiting_budget" && count ? t : undefined;
    }, { message: "task never waited for the budget" });
    expect(waiting.status_reason).toMatch(/^daily budget spent \(\$0\.9990 settled \+ \$0\.0000 in flight of night_writer's \$1\.00 daily budget; the next call needs up to \$0\.\d{4}\); resumes at .* or when the cap is raised$/);
    expect(double.calls({ scenario, kind: "messages" })).toHaveLength(0);
    const { data: notes } = await sb.admin.from("notifications").select("kind,agent_id").eq("agent_id", "night_writer");
    expect(notes).toEqual([{ kind: "budget_exhausted", agent_id: "night_writer" }]);

    // Nothing happens until the window turns over on the engine's clock.
    clock.advance(60 * 60_000);
    await new Promise((r) => setTimeout(r, 300));
    expect((await task(taskId)).status).toBe("waiting_budget");

    const t = await finished(taskId, () => clock.advance(60 * 60_000));
    expect(t.status).toBe("completed");
    const { data: mine } = await sb.admin.from("budget_reservations").select("window_start,status").eq("task_id", taskId);
    const { data: theirs } = await sb.admin.from("budget_reservations").select("window_start").eq("task_id", other.taskId);
    expect(mine).toHaveLength(1);
    expect(mine![0]!.status).toBe("settled");
    expect(Date.parse(mine![0]!.window_start)).toBe(Date.parse(theirs![0]!.window_start) + 86_400_000);
  });

  test("a task refused for money in flight waits for a settle, and the settlement's wake-up resumes it at once", async () => {
    const ins = await sb.admin.from("agents").insert({
      id: "inflight_writer",
      display_name: "In-flight writer",
      model: "claude-haiku-4-5",
      system_prompt: "You write short notes.",
      max_tokens: 1024,
      daily_budget_micros: 20_000,
    });
    expect(ins.error).toBeNull();
    // Another call of the agent is in flight and leaves $0.0005: less than this call needs, even at the 256-token floor.
    const other = await insertTask(sb.admin, { agent: "inflight_writer", prompt: "earlier work" }, null, null);
    const pre = await sb.admin.rpc("reserve_budget", { p_agent_id: "inflight_writer", p_task_id: other.taskId, p_step_id: "turn-1", p_model: "claude-haiku-4-5", p_amount_micros: 19_500 });
    expect(pre.data![0]!.ok).toBe(true);

    const scenario = "rt-inflight";
    double.script(scenario, [{ text: "Written once the money was back." }]);
    const taskId = await run("inflight_writer", scenario, "Write the note.");
    const waiting = await until(async () => {
      const t = await task(taskId);
      return t.status === "waiting_budget" ? t : undefined;
    }, { message: "task never waited for money in flight" });
    expect(waiting.status_reason).toMatch(/^waiting for calls in flight to settle \(\$0\.0000 settled \+ \$0\.0195 in flight of inflight_writer's \$0\.0200 daily budget; the next call needs up to \$0\.\d{4}\)$/);
    // Not the operator's business: no "budget exhausted" notice for money in flight.
    const { count } = await sb.admin.from("notifications").select("id", { count: "exact", head: true }).eq("agent_id", "inflight_writer");
    expect(count).toBe(0);

    // The other call settles far below its worst case; its run would send this wake-up (the clock does not move,
    // so the 30 s fallback cannot be what resumes the task).
    await sb.admin.rpc("settle_budget", { p_task_id: other.taskId, p_step_id: "turn-1", p_actual_micros: 1_500 });
    await te.engine.send({ name: "budget/agent.freed", data: { agent_id: "inflight_writer", reason: "settled" } });
    const t = await finished(taskId);
    expect(t.status).toBe("completed");
    expect(double.calls({ scenario, kind: "messages" })).toHaveLength(1);
  });

  test("a turn whose worst case exceeds the whole daily cap stops the task with the reason", async () => {
    await sb.admin.from("agents").update({ daily_budget_micros: 1_000 }).eq("id", "research");
    try {
      const scenario = "rt-never-fits";
      const taskId = await run("research", scenario);
      const t = await finished(taskId);
      expect(t.status).toBe("stopped");
      expect(t.status_reason).toMatch(/exceeds research's whole daily budget/);
      expect(double.calls({ scenario, kind: "messages" })).toHaveLength(0);
    } finally {
      await sb.admin.from("agents").update({ daily_budget_micros: 2_000_000 }).eq("id", "research");
    }
  });

  test("an agent's concurrency limit from the database: with 1 slot, two tasks work one after the other", async () => {
    const ins = await sb.admin.from("agents").insert({
      id: "solo",
      display_name: "Solo",
      model: "claude-haiku-4-5",
      system_prompt: "You work alone.",
      daily_budget_micros: 1_000_000,
      concurrency: 1,
    });
    expect(ins.error).toBeNull();
    double.script("solo-a", [{ text: "A, part one.", stop_reason: "max_tokens", latency_ms: 200 }, { text: " A done.", latency_ms: 200 }]);
    double.script("solo-b", [{ text: "B, part one.", stop_reason: "max_tokens", latency_ms: 200 }, { text: " B done.", latency_ms: 200 }]);
    const [a, b] = await Promise.all([run("solo", "solo-a"), run("solo", "solo-b")]);
    const [ta, tb] = await Promise.all([finished(a, () => clock.advance(15_000)), finished(b, () => clock.advance(15_000))]);
    expect([ta.status, tb.status]).toEqual(["completed", "completed"]);

    // Never interleaved: one task's calls all come before the other's.
    const calls = [...double.calls({ scenario: "solo-a", kind: "messages" }), ...double.calls({ scenario: "solo-b", kind: "messages" })]
      .sort((x, y) => x.seq - y.seq)
      .map((c) => c.scenario);
    expect(calls).toHaveLength(4);
    const first = calls[0];
    const second = first === "solo-a" ? "solo-b" : "solo-a";
    expect(calls).toEqual([first, first, second, second]);
    const { count } = await sb.admin.from("agent_slots").select("task_id", { count: "exact", head: true }).eq("agent_id", "solo");
    expect(count).toBe(0);
  });

  test("GET /api/spend reports settled spend per agent per day and per model, matching the tasks' costs", async () => {
    const { createApiKey } = await import("@/lib/api-keys");
    const { GET } = await import("@/app/api/spend/route");
    const key = (await createApiKey(sb.admin, "spend")).key;
    const get = (qs: string, auth = `Bearer ${key}`) => GET(new Request(`http://x/api/spend${qs}`, { headers: { authorization: auth } }));

    const res = await get("?agent=research");
    expect(res.status).toBe(200);
    const body = (await res.json()) as {
      by_agent_day: { agent_id: string; settled_micros: number; cap_micros: number }[];
      by_model: { model: string; settled_micros: number }[];
    };
    const { data: tasks } = await sb.admin.from("tasks").select("cost_micros").eq("agent_id", "research");
    const total = tasks!.reduce((a, t) => a + Number(t.cost_micros), 0);
    expect(total).toBeGreaterThan(0);
    expect(body.by_agent_day.reduce((a, d) => a + Number(d.settled_micros), 0)).toBe(total);
    expect(body.by_agent_day.every((d) => d.agent_id === "research" && Number(d.cap_micros) === 2_000_000)).toBe(true);
    expect(body.by_model.map((m) => m.model)).toEqual(["claude-sonnet-4-6"]);
    expect(Number(body.by_model[0]!.settled_micros)).toBe(total);

    expect((await get("", "Bearer nope")).status).toBe(401);
    const bad = await get("?from=yesterday");
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { message: string } }).error.message).toContain("from");
  });

  test("a batch-mode task sends its model calls through the Message Batches API at half price", async () => {
    const scenario = "rt-batch";
    double.script(scenario, [{ text: "Batched overnight answer." }]);
    const { taskId } = await submitTask(
      sb.admin,
      { agent: "research", prompt: `${scenarioMarker(scenario)} Nothing urgent.`, mode: "batch" },
      null,
      null,
    );
    const t = await finished(taskId, () => {
      clock.advance(60_000);
      double.clock.advance(60_000);
    });
    expect(t.status).toBe("completed");
    expect((t.result as { text: string }).text).toBe("Batched overnight answer.");
    expect(double.calls({ scenario, kind: "messages" })).toHaveLength(0);
    expect(double.calls({ scenario, kind: "batch_request" })).toHaveLength(1);

    const { costMicros } = await import("@/lib/llm/prices");
    const { data: ledger } = await sb.admin
      .from("budget_reservations")
      .select("status,actual_micros,input_tokens,output_tokens,cache_creation_input_tokens,cache_read_input_tokens")
      .eq("task_id", taskId);
    expect(ledger).toHaveLength(1);
    const r = ledger![0]!;
    const usage = {
      input_tokens: Number(r.input_tokens),
      output_tokens: Number(r.output_tokens),
      cache_creation_input_tokens: Number(r.cache_creation_input_tokens),
      cache_read_input_tokens: Number(r.cache_read_input_tokens),
    };
    expect(r.status).toBe("settled");
    expect(Number(r.actual_micros)).toBe(costMicros("claude-sonnet-4-6", usage, { batch: true }));
    expect(Number(r.actual_micros)).toBeLessThan(costMicros("claude-sonnet-4-6", usage));
    expect(Number(t.cost_micros)).toBe(Number(r.actual_micros));
  });
});
