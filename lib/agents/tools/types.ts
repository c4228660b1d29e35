// A tool is data plus one function: the name, description and JSON Schema Claude sees, the zod schema that
// validates what the model sends, whether calling it changes the world, and `run`. The JSON Schema is derived from
// the zod schema (zod 4's `z.toJSONSchema`), so what the model is told and what is enforced cannot drift apart.
import { z } from "zod";
import type { AdminClient } from "@/lib/db/admin";
import type { Json } from "@/lib/db/database.types";
import type { ToolConfig } from "./config";

export interface ToolContext {
  /** The server's Supabase client (secret key). */
  db: AdminClient;
  taskId: string;
  /** Claude's `tool_use` block id: the key of the side-effect ledger (stable across a retried step). */
  toolUseId: string;
  /** Aborts the call (the agent's wall clock). Tools also apply their own time caps. */
  signal?: AbortSignal;
  config: ToolConfig;
  /** The run's notion of now (never earlier than a wait it slept until): the clock of circuit breakers. */
  now?: Date;
}

/** The JSON Schema object Claude's `tools[].input_schema` takes. */
export interface InputSchema {
  type: "object";
  properties?: Record<string, unknown>;
  required?: string[];
  [key: string]: unknown;
}

/** What Claude is told about a tool (`tools` in a Messages API request). */
export interface ToolDefinition {
  name: string;
  description: string;
  input_schema: InputSchema;
}

export interface Tool<I = unknown, O extends Json = Json> extends ToolDefinition {
  /** Validates (and normalises) the model's input. */
  input: z.ZodType<I>;
  /** Side-effecting tools run at most once per (task, tool call), through the ledger in lib/side-effects.ts. */
  sideEffect: boolean;
  /**
   * For side-effecting tools: a small record of the request for the ledger's audit column (never a large payload).
   */
  auditRecord?: (input: I, ctx: ToolContext) => Json;
  /**
   * Runs the tool and returns a small JSON result (it becomes a step output and a tool_result for the model; large
   * things go through save_artifact). Throw `ToolError` for an outcome the model should see (a refused URL, an
   * invalid address): it becomes an `is_error` tool result and, for a side effect, is recorded as the call's final
   * result. Any other error is a transient failure: the step is retried (and a side effect's claim is released,
   * which is why a side-effecting tool may only throw one when running it again is safe).
   */
  run(input: I, ctx: ToolContext): Promise<O>;
}

/** Any tool, whatever its input type (the registry's element type). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyTool = Tool<any, Json>;

/** A failure the model should read and may work around. Its message is what the model sees. */
export class ToolError extends Error {
  override readonly name = "ToolError";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/**
 * A failure worth retrying (a provider's 429 or 5xx, a network error): the step should be retried, after
 * `retryAfterMs` when the provider said so. For a side effect, the ledger releases the claim first.
 */
export class TransientToolError extends Error {
  override readonly name = "TransientToolError";
  readonly retryable = true;
  constructor(
    message: string,
    readonly retryAfterMs?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Builds a tool, deriving `input_schema` from the zod schema. */
export function defineTool<S extends z.ZodType, O extends Json>(spec: {
  name: string;
  description: string;
  input: S;
  sideEffect: boolean;
  auditRecord?: (input: z.output<S>, ctx: ToolContext) => Json;
  run(input: z.output<S>, ctx: ToolContext): Promise<O>;
}): Tool<z.output<S>, O> {
  if (!/^[a-zA-Z0-9_-]{1,64}$/.test(spec.name)) throw new Error(`tool name ${spec.name} is not a valid Claude tool name`);
  // S is a ZodType whose output is z.output<S>; TypeScript cannot see that through the generic, hence the cast.
  return { ...spec, input: spec.input as z.ZodType<z.output<S>>, input_schema: toInputSchema(spec.input) };
}

/**
 * The JSON Schema of what the model may send: zod's "input" view (fields with defaults are optional), without the
 * `$schema` key, which the Messages API does not need.
 */
export function toInputSchema(schema: z.ZodType): InputSchema {
  const { $schema: _ignored, ...json } = z.toJSONSchema(schema, { io: "input" }) as Record<string, unknown>;
  if (json.type !== "object") throw new Error("a tool's input schema must be a zod object");
  return json as InputSchema;
}
