// The tool registry and the one way to call a tool: `runToolCall(name, rawInput, ctx)`.
//
// The agent loop wraps each call in its own step (`tool-N-<name>`) and passes Claude's tool_use id as
// ctx.toolUseId. What comes back is a `tool_result` block for the next turn:
//   - an unknown tool or input the schema rejects → an `is_error` result naming the bad field (the model can fix
//     its call); never an exception;
//   - a ToolError from the tool → an `is_error` result with its message;
//   - any other error (TransientToolError, a database outage, SideEffectInProgressError) is thrown, so the step is
//     retried; SideEffectConflictError is thrown too and should fail the step for good (it is `retryable: false`).
// Side-effecting tools go through the ledger: a repeated call with the same (task, tool_use id) returns the stored
// result without running the tool again.
import type { z } from "zod";
import { runOnce } from "@/lib/side-effects";
import { saveArtifactTool } from "./save-artifact";
import { sendEmailTool } from "./send-email";
import { ToolError, type AnyTool, type ToolContext, type ToolDefinition } from "./types";
import { webFetchTool } from "./web-fetch";

export { loadToolConfig, type ToolConfig } from "./config";
export { ToolError, TransientToolError, type AnyTool, type Tool, type ToolContext, type ToolDefinition } from "./types";

export const tools = {
  web_fetch: webFetchTool,
  save_artifact: saveArtifactTool,
  send_email: sendEmailTool,
} as const satisfies Record<string, AnyTool>;

export type ToolName = keyof typeof tools;

export const TOOL_NAMES = Object.keys(tools) as ToolName[];

export function isToolName(name: string): name is ToolName {
  return Object.hasOwn(tools, name);
}

export function getTool(name: string): AnyTool | undefined {
  return isToolName(name) ? tools[name] : undefined;
}

/**
 * The `tools` array of a Messages API request, for an agent's tool names (in the given order, so that the prompt
 * cache prefix is stable). An unknown name is a configuration error and throws.
 */
export function toolDefinitions(names: readonly string[]): ToolDefinition[] {
  return names.map((name) => {
    const tool = getTool(name);
    if (!tool) throw new Error(`unknown tool ${name}; known tools: ${TOOL_NAMES.join(", ")}`);
    return { name: tool.name, description: tool.description, input_schema: tool.input_schema };
  });
}

/** A `tool_result` content block (structurally Anthropic's ToolResultBlockParam). */
export interface ToolCallResult {
  type: "tool_result";
  tool_use_id: string;
  content: string;
  is_error?: true;
  /** Not for the API: true when a side effect had already run and its stored result was returned. */
  replayed?: true;
}

/**
 * What a call produces, and what a side-effecting call stores in the ledger: the tool_result content already
 * serialised, so that a replay hands the model byte-for-byte the same content (jsonb would reorder an object's
 * keys, and a different tool_result would change the conversation and break its prompt-cache prefix).
 */
type Outcome = { content: string; is_error?: true };

export async function runToolCall(name: string, rawInput: unknown, ctx: ToolContext): Promise<ToolCallResult> {
  const tool = getTool(name);
  if (!tool) return errorResult(ctx, `Unknown tool "${name}". Available tools: ${TOOL_NAMES.join(", ")}.`);

  const parsed = tool.input.safeParse(rawInput);
  if (!parsed.success) return errorResult(ctx, `Invalid input for ${name}: ${describeIssues(parsed.error)}`);
  const input = parsed.data;

  const attempt = async (): Promise<Outcome> => {
    try {
      return { content: JSON.stringify(await tool.run(input, ctx)) };
    } catch (err) {
      if (err instanceof ToolError) return { content: err.message, is_error: true };
      throw err;
    }
  };

  if (!tool.sideEffect) return toResult(ctx, await attempt());

  const { result, replayed } = await runOnce<Outcome>(
    ctx.db,
    {
      taskId: ctx.taskId,
      toolUseId: ctx.toolUseId,
      tool: name,
      request: input,
      record: tool.auditRecord?.(input, ctx),
      leaseSeconds: ctx.config.sideEffects.leaseSeconds,
    },
    attempt,
  );
  const out = toResult(ctx, result);
  return replayed ? { ...out, replayed: true } : out;
}

function toResult(ctx: ToolContext, outcome: Outcome): ToolCallResult {
  return outcome.is_error
    ? errorResult(ctx, outcome.content)
    : { type: "tool_result", tool_use_id: ctx.toolUseId, content: outcome.content };
}

function errorResult(ctx: ToolContext, message: string): ToolCallResult {
  return { type: "tool_result", tool_use_id: ctx.toolUseId, content: message, is_error: true };
}

/** "to.0: Invalid email address; subject: Required" — every problem, each with the field it is about. */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 10)
    .map((i) => {
      const path = i.path.map(String).join(".");
      return path ? `${path}: ${i.message}` : i.message;
    })
    .join("; ");
}
