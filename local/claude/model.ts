// The "model" of the offline double: turns a validated request (and an optional scripted step) into
// assistant content. Everything is a pure function of the request, so the same request always gets the same
// answer; only message and tool-use ids are random, as in the real API.
import { randomBytes } from "node:crypto";
import { contentBlocks, type Block, type JsonSchema, type MessagesRequest, type ToolParam } from "./request";
import { SCENARIO_MARKER, type Step, type ToolCallStep } from "./script";
import { sha256, textTokens } from "./tokens";

export const OFFLINE_PREFIX = "[offline model]";

export type OutTextBlock = { type: "text"; text: string; citations: null };
export type OutToolUseBlock = { type: "tool_use"; id: string; name: string; input: Record<string, unknown>; caller: { type: "direct" } };
export type OutBlock = OutTextBlock | OutToolUseBlock;
export type StopReason = NonNullable<Step["stop_reason"]>;

export interface Generated {
  content: OutBlock[];
  stop_reason: StopReason;
  stop_sequence: string | null;
  output_tokens: number;
}

/** A script that cannot apply to the request it met (e.g. a tool the request does not offer). */
export class ScriptError extends Error {}

const BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
export function newId(prefix: string, length = 24): string {
  const bytes = randomBytes(length);
  let s = "";
  for (const b of bytes) s += BASE62[b % 62];
  return `${prefix}${s}`;
}

/** Stable digest of everything that influences the model's answer. */
export function requestDigest(req: MessagesRequest): string {
  return sha256(
    JSON.stringify([req.model, req.system ?? null, req.messages, req.tools ?? null, req.tool_choice ?? null, req.max_tokens, req.stop_sequences ?? null]),
  );
}

/** Stable fingerprint of the conversation so far (model, system, tools, messages): equal for retries of one turn. */
export function conversationFingerprint(req: MessagesRequest): string {
  return sha256(JSON.stringify([req.model, req.system ?? null, req.tools ?? null, req.messages])).slice(0, 16);
}

export function findScenario(req: { system?: unknown; messages?: unknown }): string | null {
  const m = SCENARIO_MARKER.exec(JSON.stringify([req.system ?? null, req.messages ?? null]));
  return m ? m[1]! : null;
}

const clean = (s: string) => s.replace(new RegExp(SCENARIO_MARKER.source, "g"), "").replace(/\s+/g, " ").trim();
const clip = (s: string, n: number) => (s.length > n ? `${s.slice(0, n - 1).trimEnd()}…` : s);

function blockText(b: Block): string {
  if (b.type === "text") return String(b.text);
  if (b.type === "tool_result") {
    const c = b.content as string | Block[] | undefined;
    return typeof c === "string" ? c : (c ?? []).map(blockText).join(" ");
  }
  return "";
}

const FILLER = [
  "A real Claude model would read this in full and answer in depth; this reply only stands in for one.",
  "The wording is generated from a hash of the request, so the same request always gets the same reply.",
  "Token counts in usage are estimated at about four characters per token.",
  "Nothing here was checked against any source; treat it as placeholder text.",
  "Set ANTHROPIC_API_KEY to get answers from the real Claude API instead.",
  "Summary: the request was received, its last turn is echoed above, and no further work was done.",
];

/** The default answer: plainly marked as offline, echoing the gist of the last user turn. */
export function defaultText(req: MessagesRequest, digest: string): string {
  const convo = req.messages.filter((m) => m.role !== "system");
  const lastUserIdx = convo.map((m) => m.role).lastIndexOf("user");
  const last = convo[lastUserIdx];
  const blocks = last ? contentBlocks(last.content) : [];
  const results = blocks.filter((b) => b.type === "tool_result");
  let gist: string;
  if (results.length) {
    const prev = convo[lastUserIdx - 1];
    const names = new Map(
      (prev ? contentBlocks(prev.content) : []).filter((b) => b.type === "tool_use").map((b) => [b.id as string, String(b.name)]),
    );
    const list = results.map((r) => names.get(r.tool_use_id as string) ?? "tool").join(", ");
    const first = clean(blockText(results[0]!));
    gist = `I received ${results.length} tool result${results.length > 1 ? "s" : ""} (${list})${first ? `, starting: "${clip(first, 120)}"` : ""}.`;
  } else {
    const text = clean(blocks.map(blockText).join(" "));
    gist = text ? `You asked: "${clip(text, 160)}".` : "You sent an empty turn.";
  }
  const n = parseInt(digest.slice(0, 8), 16);
  const a = FILLER[n % FILLER.length]!;
  const b = FILLER[(n >>> 8) % FILLER.length]!;
  return `${OFFLINE_PREFIX} Offline reply (no real model was called; ref ${digest.slice(0, 8)}). ${gist} ${a}${b !== a ? ` ${b}` : ""}`;
}

// ---- Tool inputs ---------------------------------------------------------------------------------------

function schemaType(s: JsonSchema): string | undefined {
  const t = s.type;
  if (Array.isArray(t)) return t.find((x) => x !== "null") as string | undefined;
  if (typeof t === "string") return t;
  if (s.properties) return "object";
  if (s.items) return "array";
  return undefined;
}

/** A value that satisfies `schema` (the common subset of JSON Schema tools use). */
export function synthesize(schema: JsonSchema | undefined, name: string, depth = 0): unknown {
  const s = schema ?? {};
  if ("const" in s) return s.const;
  if (Array.isArray(s.enum) && s.enum.length) return s.enum[0];
  if (s.default !== undefined) return s.default;
  for (const k of ["anyOf", "oneOf", "allOf"] as const) {
    const opts = s[k];
    if (Array.isArray(opts) && opts.length) return synthesize(opts[0] as JsonSchema, name, depth + 1);
  }
  switch (schemaType(s)) {
    case "string": {
      if (s.format === "uri" || s.format === "url" || /url|uri|link/i.test(name)) return "https://example.com/offline";
      if (s.format === "email" || /email/i.test(name)) return "offline@example.com";
      if (s.format === "date-time") return "2025-01-01T00:00:00Z";
      const base = `offline ${name}`;
      const min = typeof s.minLength === "number" ? s.minLength : 0;
      return base.padEnd(min, ".").slice(0, typeof s.maxLength === "number" ? Math.max(min, s.maxLength) : undefined);
    }
    case "integer":
    case "number":
      return typeof s.minimum === "number" ? s.minimum : typeof s.maximum === "number" ? Math.min(1, s.maximum) : 1;
    case "boolean":
      return true;
    case "null":
      return null;
    case "array": {
      const min = typeof s.minItems === "number" ? s.minItems : 0;
      return depth > 5 ? [] : Array.from({ length: min }, () => synthesize(s.items as JsonSchema, name, depth + 1));
    }
    case "object": {
      const props = (s.properties ?? {}) as Record<string, JsonSchema>;
      const required = (Array.isArray(s.required) ? s.required : Object.keys(props)) as string[];
      const out: Record<string, unknown> = {};
      if (depth > 5) return out;
      for (const key of required) out[key] = synthesize(props[key], key, depth + 1);
      return out;
    }
    default:
      return `offline ${name}`;
  }
}

function wrongTypeFor(schema: JsonSchema | undefined): unknown {
  switch (schemaType(schema ?? {})) {
    case "string":
      return 12345;
    case "integer":
    case "number":
      return "not-a-number";
    case "boolean":
      return "yes";
    case "array":
      return "not-an-array";
    case "object":
      return "not-an-object";
    default:
      return { unexpected: true };
  }
}

/**
 * An input object that violates the tool's schema: the first required field is missing and the other
 * declared fields have the wrong type. A schema with no declared fields gets an unexpected one instead.
 */
export function malformedInput(schema: JsonSchema | undefined): Record<string, unknown> {
  const props = ((schema ?? {}).properties ?? {}) as Record<string, JsonSchema>;
  const required = (Array.isArray(schema?.required) ? schema.required : []) as string[];
  const out: Record<string, unknown> = {};
  const keys = Object.keys(props);
  if (keys.length === 0) return { __offline_unexpected_field: 12345 };
  const dropped = required[0];
  for (const key of keys) if (key !== dropped) out[key] = wrongTypeFor(props[key]);
  if (Object.keys(out).length === 0) out.__offline_unexpected_field = 12345;
  return out;
}

function findTool(req: MessagesRequest, name: string): ToolParam {
  const tool = (req.tools ?? []).find((t) => t.name === name);
  if (!tool) {
    const offered = (req.tools ?? []).map((t) => t.name).join(", ") || "none";
    throw new ScriptError(`scripted tool call to '${name}', but the request offers no such tool (tools: ${offered})`);
  }
  return tool;
}

function toolUse(name: string, input: Record<string, unknown>, id?: string): OutToolUseBlock {
  return { type: "tool_use", id: id ?? newId("toolu_01"), name, input, caller: { type: "direct" } };
}

const toolUseTokens = (b: OutToolUseBlock) => textTokens(b.name) + textTokens(JSON.stringify(b.input)) + 12;

/** Produces the assistant content for a request, following `step` when one is scripted. */
export function generate(req: MessagesRequest, step: Step | undefined, digest: string): Generated {
  let text: string | undefined;
  const calls: OutToolUseBlock[] = [];
  if (step && (step.text !== undefined || step.tool_use || step.malformed_tool_input)) {
    text = step.text;
    const scripted: ToolCallStep[] = step.tool_use ? (Array.isArray(step.tool_use) ? step.tool_use : [step.tool_use]) : [];
    for (const c of scripted) {
      const tool = findTool(req, c.name);
      calls.push(toolUse(c.name, c.input ?? (synthesize(tool.input_schema, c.name) as Record<string, unknown>), c.id));
    }
    if (step.malformed_tool_input) {
      const tool = findTool(req, step.malformed_tool_input);
      calls.push(toolUse(tool.name, malformedInput(tool.input_schema)));
    }
  } else {
    // Unscripted: a forced tool choice gets a valid call, anything else the offline text.
    const choice = req.tool_choice;
    const forced = choice?.type === "tool" ? choice.name : choice?.type === "any" ? req.tools?.[0]?.name : undefined;
    if (forced) {
      const tool = findTool(req, forced);
      calls.push(toolUse(tool.name, synthesize(tool.input_schema, tool.name) as Record<string, unknown>));
    } else {
      text = defaultText(req, digest);
    }
  }

  let stop_reason: StopReason = calls.length ? "tool_use" : "end_turn";
  let stop_sequence: string | null = null;

  // Stop sequences end generation where they first appear (the sequence itself is not returned).
  if (text !== undefined && req.stop_sequences?.length) {
    let at = -1;
    for (const seq of req.stop_sequences) {
      const i = seq ? text.indexOf(seq) : -1;
      if (i >= 0 && (at < 0 || i < at)) {
        at = i;
        stop_sequence = seq;
      }
    }
    if (at >= 0) {
      text = text.slice(0, at);
      calls.length = 0;
      stop_reason = "stop_sequence";
    }
  }

  // max_tokens cuts the output wherever it falls.
  let budget = req.max_tokens;
  const content: OutBlock[] = [];
  let used = 0;
  if (text !== undefined) {
    const t = textTokens(text);
    if (t > budget) {
      text = text.slice(0, budget * 4);
      stop_reason = "max_tokens";
      stop_sequence = null;
      calls.length = 0;
    }
    used += textTokens(text);
    budget -= textTokens(text);
    if (text.length) content.push({ type: "text", text, citations: null });
  }
  for (const c of calls) {
    const t = toolUseTokens(c);
    if (t > budget) {
      stop_reason = "max_tokens";
      break;
    }
    budget -= t;
    used += t;
    content.push(c);
  }
  if (step?.stop_reason) stop_reason = step.stop_reason;
  return { content, stop_reason, stop_sequence, output_tokens: Math.max(used, req.max_tokens === 0 ? 0 : 1) };
}
