// One model turn of an agent: call Claude, price the usage, and record the turn on the task's timeline.
// Inngest functions wrap each call of this in its own `step.run("turn-N")`, so a finished turn is never
// paid for twice.
import type Anthropic from "@anthropic-ai/sdk";
import type { AdminClient } from "@/lib/db/admin";
import { anthropic } from "@/lib/llm/anthropic";
import { classifyModelError } from "@/lib/llm/errors";
import { costMicros } from "@/lib/llm/prices";
import { recordStep, type AgentConfig } from "@/lib/tasks/lifecycle";

export type Message = Anthropic.MessageParam;

export interface TurnResult {
  content: Anthropic.ContentBlock[];
  stop_reason: Anthropic.Message["stop_reason"];
  usage: { input_tokens: number; output_tokens: number; cache_creation_input_tokens: number; cache_read_input_tokens: number };
  cost_micros: number;
}

export async function runModelTurn(
  db: AdminClient,
  args: { taskId: string; stepId: string; agent: AgentConfig; messages: Message[] },
): Promise<TurnResult> {
  const { agent } = args;
  let message: Anthropic.Message;
  try {
    message = await anthropic().messages.create({
      model: agent.model,
      max_tokens: agent.max_tokens,
      system: agent.system_prompt,
      messages: args.messages,
    });
  } catch (err) {
    const classified = classifyModelError(err);
    await recordStep(db, {
      taskId: args.taskId,
      stepId: args.stepId,
      kind: "model",
      status: "failed",
      detail: { model: agent.model, error: classified.message },
    });
    throw classified;
  }
  const usage = {
    input_tokens: message.usage.input_tokens,
    output_tokens: message.usage.output_tokens,
    cache_creation_input_tokens: message.usage.cache_creation_input_tokens ?? 0,
    cache_read_input_tokens: message.usage.cache_read_input_tokens ?? 0,
  };
  const cost = costMicros(agent.model, usage);
  await recordStep(db, {
    taskId: args.taskId,
    stepId: args.stepId,
    kind: "model",
    status: "completed",
    detail: { model: agent.model, stop_reason: message.stop_reason },
    inputTokens: usage.input_tokens + usage.cache_creation_input_tokens + usage.cache_read_input_tokens,
    outputTokens: usage.output_tokens,
    costMicros: cost,
  });
  return { content: message.content, stop_reason: message.stop_reason, usage, cost_micros: cost };
}

/** The text of an assistant turn. */
export function textOf(content: Anthropic.ContentBlock[]): string {
  return content
    .filter((b): b is Anthropic.TextBlock => b.type === "text")
    .map((b) => b.text)
    .join("");
}
