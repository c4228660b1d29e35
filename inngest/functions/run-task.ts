// Runs one fire-and-forget task (mission pattern 1): mark it running, run the agent's model turns each as
// its own durable step, store the result, mark it finished. A step that fails is retried by Inngest; once
// retries are exhausted `onFailure` marks the task failed, so a task never stays `running` after its run.
import type Anthropic from "@anthropic-ai/sdk";
import { inngest } from "@/inngest/client";
import { taskRunRequested } from "@/inngest/events";
import { runModelTurn, textOf, type Message } from "@/lib/agents/turn";
import { db } from "@/lib/db/server";
import { finishTask, startTask } from "@/lib/tasks/lifecycle";

export const runTask = inngest.createFunction(
  {
    id: "run-task",
    name: "Run an agent task",
    triggers: [taskRunRequested],
    retries: 4,
    onFailure: async ({ event, error, step }) => {
      const taskId = (event.data.event.data as { task_id: string }).task_id;
      await step.run("mark-failed", () =>
        finishTask(db(), taskId, {
          status: "failed",
          error: { message: error.message, name: error.name },
          reason: "the run failed after its retries",
        }),
      );
    },
  },
  async ({ event, step, runId }) => {
    const taskId = event.data.task_id;
    const task = await step.run("start", () => startTask(db(), taskId, runId));
    if (!task) return { task_id: taskId, skipped: "task already finished" };

    const { agent } = task;
    const messages: Message[] = [{ role: "user", content: task.prompt }];
    let text = "";

    for (let turn = 1; turn <= agent.max_turns; turn++) {
      const out = await step.run(`turn-${turn}`, () =>
        runModelTurn(db(), { taskId, stepId: `turn-${turn}`, agent, messages }),
      );
      messages.push({ role: "assistant", content: out.content as Anthropic.ContentBlockParam[] });
      text += textOf(out.content);

      if (out.stop_reason === "tool_use") {
        // This agent offers no tools, so a tool request is answered with an error the model can read.
        messages.push({ role: "user", content: unavailableToolResults(out.content) });
        continue;
      }
      if (out.stop_reason === "max_tokens") {
        messages.push({ role: "user", content: "Continue exactly where you stopped." });
        continue;
      }
      await step.run("finish", () =>
        finishTask(db(), taskId, { status: "completed", result: { text, turns: turn } }),
      );
      return { task_id: taskId, status: "completed", turns: turn };
    }

    // Hard limit: keep what was produced and say why the agent stopped.
    const reason = `max_turns (${agent.max_turns}) reached`;
    await step.run("finish", () =>
      finishTask(db(), taskId, {
        status: "stopped",
        reason,
        result: { text, turns: agent.max_turns, partial: true },
      }),
    );
    return { task_id: taskId, status: "stopped", reason };
  },
);

function unavailableToolResults(content: Anthropic.ContentBlock[]): Anthropic.ToolResultBlockParam[] {
  return content
    .filter((b): b is Anthropic.ToolUseBlock => b.type === "tool_use")
    .map((b) => ({
      type: "tool_result" as const,
      tool_use_id: b.id,
      is_error: true,
      content: `Tool '${b.name}' is not available to this agent.`,
    }));
}
