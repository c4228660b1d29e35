// Crash: the app and the engine are SIGKILLed together in the middle of a run — after turn 3 of 4, while
// turn 4 waits out a rate limit — then restarted on the same database. The run resumes from its last
// checkpoint: turns 1-3 are not run again, and the Claude double answers each turn exactly once.
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

interface RunDetail {
  run_id: string;
  status: string;
  output: { task_id?: string } | null;
  history: { type: string; step_name: string | null }[];
}

async function runsOf(taskId: string): Promise<RunDetail[]> {
  const list = (await (await fetch(`${stack.engineUrl}/v0/runs?function_id=nightshift-run-task`)).json()) as {
    data: { run_id: string }[];
  };
  const details = await Promise.all(
    list.data.map(async (r) => (await (await fetch(`${stack.engineUrl}/v0/runs/${r.run_id}`)).json()) as RunDetail & { event: { data: { task_id: string } } }),
  );
  return details.filter((d) => d.event.data.task_id === taskId);
}

test("kill -9 of app and engine mid-run: the run finishes from its last checkpoint, each turn answered once", async () => {
  const scenario = "crash";
  stack.double.script(scenario, [
    { text: "one ", stop_reason: "max_tokens" },
    { text: "two ", stop_reason: "max_tokens" },
    { text: "three ", stop_reason: "max_tokens" },
    // Turn 4 is rate limited: the run sleeps durably for the retry-after (pacing, not a failed attempt), and the
    // crash lands in that sleep.
    { error: { status: 429, retry_after_s: 20 } },
    { text: "four." },
  ]);
  const res = await fetch(`${stack.appUrl}/api/tasks`, {
    method: "POST",
    headers: { authorization: `Bearer ${stack.apiKey}`, "content-type": "application/json" },
    body: JSON.stringify({ agent: "research", prompt: `${scenarioMarker(scenario)} Count to four.` }),
  });
  expect(res.status).toBe(202);
  const { task_id } = (await res.json()) as { task_id: string };

  // Wait until the engine has durably recorded turn 4's rate-limited outcome (the sleep follows it).
  await waitUntil(
    async () => {
      const [run] = await runsOf(task_id);
      return !!run?.history.some((h) => h.type === "step.completed" && h.step_name === "turn-4");
    },
    60_000,
    "turn 4 to be rate limited",
    stack.output().split("\n"),
  );
  const [before] = await runsOf(task_id);
  expect(before!.history.filter((h) => h.type === "step.completed" && /^(start|turn-\d+(-retry-\d+)?)$/.test(h.step_name ?? "")).map((h) => h.step_name)).toEqual([
    "start",
    "turn-1",
    "turn-2",
    "turn-3",
    "turn-4",
  ]);

  await stack.crash();
  await stack.restart();

  await waitUntil(
    async () => {
      const { data } = await stack.sb.admin.from("tasks").select("status").eq("id", task_id).single();
      return data?.status === "completed";
    },
    60_000,
    "the task to complete after the restart",
    stack.output().split("\n"),
  );

  const calls = stack.double.calls({ scenario, kind: "messages" });
  expect(calls.map((c) => [c.turn, c.status])).toEqual([
    [0, 200],
    [1, 200],
    [2, 200],
    [3, 429],
    [3, 200],
  ]);
  const { data: task } = await stack.sb.admin.from("tasks").select("result,progress_done").eq("id", task_id).single();
  expect(task).toEqual({ result: { text: "one two three four.", turns: 4 }, progress_done: 4 });
  // The run goes on for a moment after the task row is final (event, notification): wait for the run itself.
  await waitUntil(async () => (await runsOf(task_id))[0]?.status === "completed", 30_000, "the run to complete");
  const runs = await runsOf(task_id);
  expect(runs).toHaveLength(1);
  expect(runs[0]!.run_id).toBe(before!.run_id);
  expect(runs[0]!.status).toBe("completed");
});
