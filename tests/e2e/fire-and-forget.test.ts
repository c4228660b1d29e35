// End to end: `next start` + the local engine + embedded Supabase + offline Claude. A task submitted over
// HTTP runs through the app's real /api/inngest route and is polled to completion.
import { afterAll, beforeAll, expect, test } from "vitest";
import { scenarioMarker } from "../../local/claude/server";
import { startAppStack, waitUntil, type AppStack } from "../support/app-stack";

let stack: AppStack;

beforeAll(async () => {
  stack = await startAppStack();
});
afterAll(async () => {
  await stack?.stop();
});

async function submit(body: unknown, headers: Record<string, string> = {}) {
  return fetch(`${stack.appUrl}/api/tasks`, {
    method: "POST",
    headers: { authorization: `Bearer ${stack.apiKey}`, "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
}

async function status(taskId: string) {
  const res = await fetch(`${stack.appUrl}/api/tasks/${taskId}`, { headers: { authorization: `Bearer ${stack.apiKey}` } });
  expect(res.status).toBe(200);
  return (await res.json()) as { status: string; result: { text: string } | null; progress: { done: number; total: number }; cost_usd: number; error: unknown };
}

test("a task submitted over HTTP is queued, runs in the background and completes", async () => {
  const scenario = "e2e-basic";
  stack.double.script(scenario, [{ text: "Checkpoints make long work safe.", stop_reason: "max_tokens" }, { text: " Done." }]);
  const res = await submit({ agent: "research", prompt: `${scenarioMarker(scenario)} Why checkpoint?` });
  expect(res.status).toBe(202);
  const { task_id, status_url } = (await res.json()) as { task_id: string; status_url: string };
  expect(res.headers.get("location")).toBe(`${stack.appUrl}${status_url}`);

  await waitUntil(async () => (await status(task_id)).status === "completed", 60_000, "the task to complete", stack.output().split("\n"));
  const done = await status(task_id);
  expect(done.result?.text).toBe("Checkpoints make long work safe. Done.");
  // Progress counts model turns against the agent's max_turns, the same while running and after (research: 10).
  const { data: agent } = await stack.sb.admin.from("agents").select("max_turns").eq("id", "research").single();
  expect(done.progress).toEqual({ done: 2, total: agent!.max_turns });
  expect(done.cost_usd).toBeGreaterThan(0);
  expect(stack.double.calls({ scenario, kind: "messages" })).toHaveLength(2);
});

test("a permanent model error ends the task failed with the error stored, never stuck in running", async () => {
  const scenario = "e2e-permanent";
  stack.double.script(scenario, [{ error: { status: 400, message: "messages: this conversation is invalid" } }]);
  const res = await submit({ agent: "content", prompt: `${scenarioMarker(scenario)} Draft.` });
  const { task_id } = (await res.json()) as { task_id: string };

  await waitUntil(async () => (await status(task_id)).status === "failed", 60_000, "the task to fail", stack.output().split("\n"));
  const failed = await status(task_id);
  expect(JSON.stringify(failed.error)).toContain("Claude API 400: messages: this conversation is invalid");
  expect(stack.double.calls({ scenario, kind: "messages" })).toHaveLength(1);
});

test("a rate-limited model call is retried by the engine, honouring retry-after, and the task completes", async () => {
  const scenario = "e2e-429";
  stack.double.script(scenario, [{ error: { status: 429, retry_after_s: 1 } }, { text: "After the wait." }]);
  const res = await submit({ agent: "outreach", prompt: `${scenarioMarker(scenario)} Hello.` });
  const { task_id } = (await res.json()) as { task_id: string };

  await waitUntil(async () => (await status(task_id)).status === "completed", 60_000, "the task to complete", stack.output().split("\n"));
  const calls = stack.double.calls({ scenario, kind: "messages" });
  expect(calls.map((c) => c.status)).toEqual([429, 200]);
  expect(Date.parse(calls[1]!.at) - Date.parse(calls[0]!.at)).toBeGreaterThanOrEqual(900);
});

test("a repeated Idempotency-Key over HTTP runs the task once", async () => {
  const scenario = "e2e-idem";
  const body = { agent: "research", prompt: `${scenarioMarker(scenario)} Once only.` };
  const [a, b] = await Promise.all([submit(body, { "idempotency-key": "e2e-once" }), submit(body, { "idempotency-key": "e2e-once" })]);
  const ida = ((await a.json()) as { task_id: string }).task_id;
  const idb = ((await b.json()) as { task_id: string }).task_id;
  expect(ida).toBe(idb);
  await waitUntil(async () => (await status(ida)).status === "completed", 60_000, "the task to complete");
  // Every run of run-task returns its task id (a duplicate run would too, as "skipped"). The run goes on for a
  // moment after the task row is final (event, notification), so wait for the run itself.
  const mine = async () => {
    const runs = (await (await fetch(`${stack.engineUrl}/v0/runs?function_id=nightshift-run-task&status=completed`)).json()) as {
      data: { output: { task_id?: string } | null }[];
    };
    return runs.data.filter((r) => r.output?.task_id === ida);
  };
  await waitUntil(async () => (await mine()).length > 0, 30_000, "the run to complete");
  // And no other run, finished or not, was started for this task.
  const all = (await (await fetch(`${stack.engineUrl}/v0/runs?function_id=nightshift-run-task`)).json()) as { data: { run_id: string }[] };
  const details = await Promise.all(
    all.data.map(async (r) => (await (await fetch(`${stack.engineUrl}/v0/runs/${r.run_id}`)).json()) as { event: { data: { task_id: string } } }),
  );
  expect(details.filter((d) => d.event.data.task_id === ida)).toHaveLength(1);
  expect(stack.double.calls({ scenario, kind: "messages" })).toHaveLength(1);
});
