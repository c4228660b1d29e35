// Request validation for the offline Claude double. The goal is to reject what the real Messages API
// rejects, with a message a developer can act on, so that a bug in the agent loop fails here the same way
// it would fail in production. Shape checks use zod; conversation rules (alternation, tool_use/tool_result
// pairing, breakpoint limits) are checked by hand afterwards.
import { z } from "zod";

const cacheControl = z
  .object({ type: z.literal("ephemeral"), ttl: z.enum(["5m", "1h"]).optional() })
  .nullable()
  .optional();

const textBlock = z.looseObject({
  type: z.literal("text"),
  text: z.string(),
  cache_control: cacheControl,
  citations: z.array(z.unknown()).nullable().optional(),
});

const sourceObject = z.looseObject({ type: z.string() });

const imageBlock = z.looseObject({ type: z.literal("image"), source: sourceObject, cache_control: cacheControl });
const documentBlock = z.looseObject({
  type: z.literal("document"),
  source: sourceObject,
  cache_control: cacheControl,
  title: z.string().nullable().optional(),
  context: z.string().nullable().optional(),
});
const toolUseBlock = z.looseObject({
  type: z.literal("tool_use"),
  id: z.string().min(1),
  name: z.string().min(1),
  input: z.record(z.string(), z.unknown()),
  cache_control: cacheControl,
});
const anyTypedBlock = z.looseObject({ type: z.string(), cache_control: cacheControl });
const toolResultBlock = z.looseObject({
  type: z.literal("tool_result"),
  tool_use_id: z.string().min(1),
  content: z.union([z.string(), z.array(anyTypedBlock)]).optional(),
  is_error: z.boolean().optional(),
  cache_control: cacheControl,
});
const thinkingBlock = z.looseObject({ type: z.literal("thinking"), thinking: z.string(), signature: z.string() });
const redactedThinkingBlock = z.looseObject({ type: z.literal("redacted_thinking"), data: z.string() });

// Blocks the double understands in detail; other documented types (server tool blocks, search results,
// containers...) are accepted as opaque objects and only counted for tokens.
const BLOCK_SCHEMAS: Record<string, z.ZodType> = {
  text: textBlock,
  image: imageBlock,
  document: documentBlock,
  tool_use: toolUseBlock,
  tool_result: toolResultBlock,
  thinking: thinkingBlock,
  redacted_thinking: redactedThinkingBlock,
};
const OPAQUE_BLOCK_TYPES = new Set([
  "search_result",
  "server_tool_use",
  "web_search_tool_result",
  "web_fetch_tool_result",
  "code_execution_tool_result",
  "bash_code_execution_tool_result",
  "text_editor_code_execution_tool_result",
  "tool_search_tool_result",
  "container_upload",
  "tool_reference",
  "mcp_tool_use",
  "mcp_tool_result",
]);

const contentBlock = z.looseObject({ type: z.string() }).superRefine((block, ctx) => {
  const schema = BLOCK_SCHEMAS[block.type];
  if (!schema) {
    if (!OPAQUE_BLOCK_TYPES.has(block.type)) {
      ctx.addIssue({
        code: "custom",
        path: ["type"],
        message: `Input tag '${block.type}' found using 'type' does not match any of the expected tags: ${[
          ...Object.keys(BLOCK_SCHEMAS),
          ...OPAQUE_BLOCK_TYPES,
        ].join(", ")}`,
      });
    }
    return;
  }
  const r = schema.safeParse(block);
  if (!r.success) for (const issue of r.error.issues) ctx.addIssue({ code: "custom", path: issue.path, message: issue.message });
});

const messageParam = z.object({
  role: z.enum(["user", "assistant", "system"]),
  content: z.union([z.string(), z.array(contentBlock)]),
});

const customTool = z.looseObject({
  name: z.string(),
  description: z.string().optional(),
  input_schema: z.looseObject({ type: z.literal("object") }),
  cache_control: cacheControl,
  type: z.union([z.literal("custom"), z.null()]).optional(),
});
// Server tools (web_search_20250305, bash_20250124, ...) carry a dated `type` and no input_schema.
const serverTool = z.looseObject({ type: z.string().regex(/_\d{8}$/), name: z.string(), cache_control: cacheControl });
const toolParam = z.union([customTool, serverTool]);

const toolChoice = z.discriminatedUnion("type", [
  z.object({ type: z.literal("auto"), disable_parallel_tool_use: z.boolean().optional() }),
  z.object({ type: z.literal("any"), disable_parallel_tool_use: z.boolean().optional() }),
  z.object({ type: z.literal("tool"), name: z.string(), disable_parallel_tool_use: z.boolean().optional() }),
  z.object({ type: z.literal("none") }),
]);

const thinking = z.discriminatedUnion("type", [
  z.looseObject({ type: z.literal("enabled"), budget_tokens: z.number().int() }),
  z.looseObject({ type: z.literal("disabled") }),
  z.looseObject({ type: z.literal("adaptive") }),
]);

const common = {
  model: z.string().min(1),
  messages: z.array(messageParam),
  system: z.union([z.string(), z.array(textBlock)]).optional(),
  tools: z.array(toolParam).optional(),
  tool_choice: toolChoice.optional(),
  thinking: thinking.optional(),
  cache_control: cacheControl,
  output_config: z.looseObject({}).optional(),
  speed: z.enum(["standard", "fast"]).nullable().optional(),
  mcp_servers: z.array(z.unknown()).optional(),
  context_management: z.unknown().optional(),
};

export const messagesCreateSchema = z.strictObject({
  ...common,
  max_tokens: z.number().int().min(0),
  stream: z.boolean().optional(),
  stop_sequences: z.array(z.string()).optional(),
  metadata: z.looseObject({ user_id: z.string().nullable().optional() }).optional(),
  service_tier: z.enum(["auto", "standard_only"]).optional(),
  container: z.unknown().optional(),
  diagnostics: z.unknown().optional(),
  inference_geo: z.string().nullable().optional(),
  // Not in SDK 1.10's types, but older clients send them and the API has accepted them.
  temperature: z.number().min(0).max(1).optional(),
  top_p: z.number().min(0).max(1).optional(),
  top_k: z.number().int().min(0).optional(),
});

export const countTokensSchema = z.strictObject(common);

export type CacheControl = { type: "ephemeral"; ttl?: "5m" | "1h" } | null | undefined;
export interface Block {
  type: string;
  cache_control?: CacheControl;
  [k: string]: unknown;
}
export interface TextBlockParam extends Block {
  type: "text";
  text: string;
}
export interface MessageParam {
  role: "user" | "assistant" | "system";
  content: string | Block[];
}
export interface ToolParam {
  name: string;
  type?: string | null;
  description?: string;
  input_schema?: JsonSchema;
  cache_control?: CacheControl;
  [k: string]: unknown;
}
export type JsonSchema = Record<string, unknown>;

/** A validated Messages (or count_tokens) request. */
export interface MessagesRequest {
  model: string;
  max_tokens: number;
  messages: MessageParam[];
  system?: string | TextBlockParam[];
  tools?: ToolParam[];
  tool_choice?: { type: "auto" | "any" | "tool" | "none"; name?: string; disable_parallel_tool_use?: boolean };
  thinking?: { type: string; budget_tokens?: number };
  cache_control?: CacheControl;
  stream?: boolean;
  stop_sequences?: string[];
  [k: string]: unknown;
}

export type Validation = { ok: true; request: MessagesRequest } | { ok: false; status: number; type: string; message: string };

const invalid = (message: string): Validation => ({ ok: false, status: 400, type: "invalid_request_error", message });

/** Formats zod issues in the style of the real API: `path.to.field: reason`. */
function formatIssues(issues: z.core.$ZodIssue[]): string {
  const lines = issues.slice(0, 5).map((i) => {
    if (i.code === "unrecognized_keys") {
      return i.keys.map((k) => `${[...i.path, k].join(".")}: Extra inputs are not permitted`).join("; ");
    }
    const path = i.path.length ? i.path.join(".") : "body";
    const msg = /received undefined$/.test(i.message) ? "Field required" : i.message;
    return `${path}: ${msg}`;
  });
  if (issues.length > 5) lines.push(`(${issues.length - 5} more)`);
  return lines.join("; ");
}

// Largest output a model may be asked for (non-streaming or streaming), from Anthropic's model table.
// A model not listed is not capped.
const MAX_OUTPUT: Array<[RegExp, number]> = [
  [/^claude-opus-4(-1)?(-\d{8})?$/, 32_000],
  [/^claude-(sonnet-4|sonnet-4-5|haiku-4-5|opus-4-5)(-\d{8})?$|^claude-3-7-sonnet/, 64_000],
  [/^claude-3-5-(haiku|sonnet)/, 8_192],
  [/^claude-3-(haiku|opus)/, 4_096],
];
export const CONTEXT_WINDOW = 200_000;

export function maxOutputTokens(model: string): number | undefined {
  return MAX_OUTPUT.find(([re]) => re.test(model))?.[1];
}

export function contentBlocks(content: string | Block[]): Block[] {
  return typeof content === "string" ? [{ type: "text", text: content }] : content;
}

/**
 * Validates a Messages request body. `kind` selects the endpoint's rules; `inBatch` applies the batch-only
 * restriction (max_tokens >= 1).
 */
export function validateRequest(body: unknown, kind: "create" | "count_tokens", inBatch = false): Validation {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    return invalid("body: Input should be a valid dictionary or object to extract fields from");
  }
  const parsed = (kind === "create" ? messagesCreateSchema : countTokensSchema).safeParse(body);
  if (!parsed.success) return invalid(formatIssues(parsed.error.issues));
  const req = parsed.data as unknown as MessagesRequest;
  if (kind === "count_tokens") req.max_tokens = 0;

  if (!/^claude-/.test(req.model)) {
    return { ok: false, status: 404, type: "not_found_error", message: `model: ${req.model}` };
  }
  if (kind === "create") {
    if (inBatch && req.max_tokens < 1) return invalid("max_tokens: max_tokens must be at least 1 in a batch request");
    const cap = maxOutputTokens(req.model);
    if (cap !== undefined && req.max_tokens > cap) {
      return invalid(
        `max_tokens: ${req.max_tokens} > ${cap}, which is the maximum allowed number of output tokens for ${req.model}`,
      );
    }
    if (inBatch && req.stream) return invalid("stream: streaming is not supported in batch requests");
  }

  // Tools.
  const toolNames = new Set<string>();
  for (const [i, tool] of (req.tools ?? []).entries()) {
    if (!/^[a-zA-Z0-9_-]{1,128}$/.test(tool.name)) {
      return invalid(`tools.${i}.name: String should match pattern '^[a-zA-Z0-9_-]{1,128}$'`);
    }
    if (toolNames.has(tool.name)) return invalid(`tools: Tool names must be unique. Duplicate: ${tool.name}`);
    toolNames.add(tool.name);
  }
  if (req.tool_choice?.type === "tool" && !toolNames.has(req.tool_choice.name ?? "")) {
    return invalid(`tool_choice.name: Tool '${req.tool_choice.name}' not found in the provided tools`);
  }
  if ((req.tool_choice?.type === "any" || req.tool_choice?.type === "tool") && toolNames.size === 0) {
    return invalid("tool_choice: tool_choice may only be specified while providing tools.");
  }
  if (req.thinking?.type === "enabled") {
    const budget = req.thinking.budget_tokens ?? 0;
    if (budget < 1024) return invalid("thinking.enabled.budget_tokens: Input should be greater than or equal to 1024");
    if (kind === "create" && budget >= req.max_tokens) {
      return invalid("`max_tokens` must be greater than `thinking.budget_tokens`.");
    }
  }

  // Conversation rules.
  const msgs = req.messages;
  if (msgs.length === 0) return invalid("messages: at least one message is required");
  const convo = msgs.map((m, index) => ({ m, index })).filter(({ m }) => m.role !== "system");
  if (convo.length === 0) return invalid("messages: at least one user message is required");
  if (convo[0]!.m.role !== "user") return invalid('messages: first message must use the "user" role');
  const seenToolUse = new Set<string>();
  let usesToolBlocks = false;
  for (let k = 0; k < convo.length; k++) {
    const { m, index } = convo[k]!;
    const prev = k > 0 ? convo[k - 1] : undefined;
    if (prev && prev.m.role === m.role) {
      // The current API merges consecutive same-role turns; the double refuses them on purpose, because in
      // this codebase they always mean the agent loop appended a turn instead of completing one.
      return invalid(
        `messages.${index}: roles must alternate between "user" and "assistant", but found multiple "${m.role}" roles in a row`,
      );
    }
    const blocks = contentBlocks(m.content);
    const isFinalAssistant = k === convo.length - 1 && m.role === "assistant";
    if (blocks.length === 0 && !isFinalAssistant) {
      return invalid(
        `messages.${index}: all messages must have non-empty content except for the optional final assistant message`,
      );
    }
    for (const [j, b] of blocks.entries()) {
      if (b.type === "text" && (b as TextBlockParam).text.length === 0 && !isFinalAssistant) {
        return invalid(`messages.${index}.content.${j}.text: text content blocks must be non-empty`);
      }
      if (b.type === "tool_use" && m.role !== "assistant") {
        return invalid(`messages.${index}.content.${j}: tool_use blocks may only appear in assistant messages`);
      }
      if (b.type === "tool_result" && m.role !== "user") {
        return invalid(`messages.${index}.content.${j}: tool_result blocks may only appear in user messages`);
      }
      if (b.type === "tool_use") {
        const id = b.id as string;
        if (seenToolUse.has(id)) return invalid(`messages.${index}.content.${j}.id: tool_use ids must be unique: ${id}`);
        seenToolUse.add(id);
      }
      if (b.type === "tool_use" || b.type === "tool_result") usesToolBlocks = true;
    }
    // Each tool_use must be answered by a tool_result in the very next message.
    if (m.role === "assistant") {
      const ids = blocks.filter((b) => b.type === "tool_use").map((b) => b.id as string);
      const next = convo[k + 1];
      if (ids.length && next) {
        const answered = new Set(
          contentBlocks(next.m.content)
            .filter((b) => b.type === "tool_result")
            .map((b) => b.tool_use_id as string),
        );
        const missing = ids.filter((id) => !answered.has(id));
        if (missing.length) {
          return invalid(
            `messages.${next.index}: \`tool_use\` ids were found without \`tool_result\` blocks immediately after: ${missing.join(", ")}. Each \`tool_use\` block must have a corresponding \`tool_result\` block in the next message.`,
          );
        }
      }
    }
    // Each tool_result must answer a tool_use of the previous message, and come before any other content.
    if (m.role === "user") {
      const prevIds = new Set(
        prev ? contentBlocks(prev.m.content).filter((b) => b.type === "tool_use").map((b) => b.id as string) : [],
      );
      let sawOther = false;
      for (const [j, b] of blocks.entries()) {
        if (b.type !== "tool_result") {
          sawOther = true;
          continue;
        }
        if (!prevIds.has(b.tool_use_id as string)) {
          return invalid(
            `messages.${index}.content.${j}: unexpected \`tool_use_id\` found in \`tool_result\` blocks: ${String(b.tool_use_id)}. Each \`tool_result\` block must have a corresponding \`tool_use\` block in the previous message.`,
          );
        }
        if (sawOther) {
          return invalid(
            `messages.${index}.content.${j}: tool_result blocks must come before any other content in the user message`,
          );
        }
      }
    }
  }
  if (usesToolBlocks && !req.tools?.length) {
    return invalid("Requests which include `tool_use` or `tool_result` blocks must define tools.");
  }

  // Cache breakpoints.
  let breakpoints = 0;
  const count = (b: { cache_control?: CacheControl }) => {
    if (b.cache_control) breakpoints++;
  };
  (req.tools ?? []).forEach(count);
  if (Array.isArray(req.system)) req.system.forEach(count);
  for (const m of msgs) {
    if (typeof m.content === "string") continue;
    for (const b of m.content) {
      count(b);
      if (b.type === "tool_result" && Array.isArray(b.content)) (b.content as Block[]).forEach(count);
    }
  }
  if (breakpoints > 4) {
    return invalid(`A maximum of 4 blocks with cache_control may be provided. Found ${breakpoints}.`);
  }
  return { ok: true, request: req };
}
