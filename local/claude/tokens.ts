// Token estimation for the offline double. Real tokenizers average roughly four characters of English per
// token; the double uses exactly that, plus the fixed overheads the real API adds (per-message framing, the
// hidden tool-use system prompt), so that usage figures and cost benchmarks land in a realistic range.
import { createHash } from "node:crypto";
import { contentBlocks, type Block, type CacheControl, type MessagesRequest } from "./request";

export const CHARS_PER_TOKEN = 4;
/** Framing tokens per message (role markers and separators). */
export const MESSAGE_OVERHEAD_TOKENS = 3;
/** The hidden system prompt the API adds when tools are present (Anthropic documents ~346 for auto/none). */
export const TOOL_SYSTEM_PROMPT_TOKENS = { auto: 346, any: 313 } as const;
/** An image of typical size (~1.15 megapixels) costs about 1,600 tokens; the double does not decode images. */
export const IMAGE_TOKENS = 1_600;
/** A PDF page is ~1,500-3,000 tokens; the double counts one page per 3 KB of base64 PDF. */
export const PDF_PAGE_TOKENS = 1_500;

export function textTokens(text: string): number {
  return text.length === 0 ? 0 : Math.ceil(text.length / CHARS_PER_TOKEN);
}

function jsonTokens(value: unknown): number {
  return textTokens(JSON.stringify(value ?? {}));
}

/** Tokens of one content block as the model sees it. */
export function blockTokens(block: Block): number {
  switch (block.type) {
    case "text":
      return textTokens(String(block.text ?? ""));
    case "image":
      return IMAGE_TOKENS;
    case "document": {
      const source = (block.source ?? {}) as { type?: string; data?: unknown; media_type?: string; content?: unknown };
      if (source.type === "text") return textTokens(String(source.data ?? "")) + 10;
      if (source.type === "content" && Array.isArray(source.content)) {
        return (source.content as Block[]).reduce((n, b) => n + blockTokens(b), 10);
      }
      if (source.type === "base64" && typeof source.data === "string") {
        return Math.max(1, Math.ceil(source.data.length / 3_000)) * PDF_PAGE_TOKENS;
      }
      return PDF_PAGE_TOKENS;
    }
    case "tool_use":
      return textTokens(String(block.name ?? "")) + jsonTokens(block.input) + 8;
    case "tool_result": {
      const c = block.content as string | Block[] | undefined;
      const inner = c === undefined ? 0 : typeof c === "string" ? textTokens(c) : c.reduce((n, b) => n + blockTokens(b), 0);
      return inner + 6;
    }
    case "thinking":
      return textTokens(String(block.thinking ?? ""));
    case "redacted_thinking":
      return textTokens(String(block.data ?? "")) ;
    default:
      return jsonTokens(block);
  }
}

/** One cacheable unit of the prompt, in the order the API processes them: tools, system, messages. */
export interface PromptBlock {
  region: "tools" | "system" | "messages";
  tokens: number;
  /** Content identity (cache_control stripped), for prefix hashing. */
  key: string;
  cache: CacheControl;
}

function strip(block: Record<string, unknown>): string {
  const { cache_control: _cc, ...rest } = block;
  if (rest.type === "tool_result" && Array.isArray(rest.content)) {
    rest.content = (rest.content as Block[]).map((b) => JSON.parse(strip(b)));
  }
  return JSON.stringify(rest);
}

/** Cache marker of a block, looking inside tool_result content too. */
function blockCache(block: Block): CacheControl {
  if (block.cache_control) return block.cache_control;
  if (block.type === "tool_result" && Array.isArray(block.content)) {
    const inner = (block.content as Block[]).filter((b) => b.cache_control).at(-1);
    return inner?.cache_control;
  }
  return undefined;
}

/** Flattens a request into prompt blocks; the sum of their tokens is the request's input token count. */
export function promptBlocks(req: MessagesRequest): PromptBlock[] {
  const out: PromptBlock[] = [];
  const tools = req.tools ?? [];
  const choice = req.tool_choice?.type;
  tools.forEach((tool, i) => {
    const { cache_control, ...def } = tool;
    let tokens = jsonTokens(def);
    if (i === 0) tokens += choice === "any" || choice === "tool" ? TOOL_SYSTEM_PROMPT_TOKENS.any : TOOL_SYSTEM_PROMPT_TOKENS.auto;
    out.push({ region: "tools", tokens, key: `tool:${JSON.stringify(def)}`, cache: cache_control });
  });
  if (typeof req.system === "string") {
    if (req.system.length) out.push({ region: "system", tokens: textTokens(req.system) + 2, key: `system:${req.system}`, cache: undefined });
  } else if (req.system) {
    req.system.forEach((b, i) =>
      out.push({ region: "system", tokens: blockTokens(b) + (i === 0 ? 2 : 0), key: `system:${strip(b)}`, cache: b.cache_control }),
    );
  }
  for (const m of req.messages) {
    const blocks = contentBlocks(m.content);
    if (blocks.length === 0) {
      out.push({ region: "messages", tokens: MESSAGE_OVERHEAD_TOKENS, key: `${m.role}:<empty>`, cache: undefined });
      continue;
    }
    blocks.forEach((b, j) =>
      out.push({
        region: "messages",
        tokens: blockTokens(b) + (j === 0 ? MESSAGE_OVERHEAD_TOKENS : 0),
        key: `${m.role}${j === 0 ? "+" : ""}:${strip(b)}`,
        cache: blockCache(b),
      }),
    );
  }
  // Top-level cache_control ("automatic caching") marks the last cacheable block.
  if (req.cache_control && out.length) {
    const last = out[out.length - 1]!;
    if (!last.cache) last.cache = req.cache_control;
  }
  return out;
}

export function countInputTokens(req: MessagesRequest): number {
  return promptBlocks(req).reduce((n, b) => n + b.tokens, 0);
}

export function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}
