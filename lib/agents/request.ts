// Builds an agent's Messages API request. Prompt caching: the tool definitions and the system prompt carry a
// cache breakpoint (they never change during a run), and a second, moving breakpoint sits on the newest message,
// so each turn reads the whole conversation so far from the cache and pays full price only for what is new.
import type Anthropic from "@anthropic-ai/sdk";
import type { AgentConfig } from "./catalog";
import { toolDefinitions } from "./tools";

export type Message = Anthropic.MessageParam;

const EPHEMERAL = { type: "ephemeral" } as const;

export function buildRequest(
  agent: AgentConfig,
  messages: Message[],
  opts: { serverWebSearch: boolean; /** Off only to measure what caching saves (bench/cost.ts). */ promptCaching?: boolean },
): Anthropic.MessageCreateParamsNonStreaming {
  const caching = opts.promptCaching ?? true;
  const tools: Anthropic.ToolUnion[] = toolDefinitions(agent.tools).map((t) => ({ ...t }) as Anthropic.Tool);
  if (opts.serverWebSearch) {
    // Claude's server-side search (billed per use by Anthropic): only with a real API key.
    tools.push({ type: "web_search_20250305", name: "web_search", max_uses: 5 });
  }
  const last = tools[tools.length - 1];
  if (last && caching) tools[tools.length - 1] = { ...last, cache_control: EPHEMERAL } as Anthropic.ToolUnion;

  return {
    model: agent.model,
    max_tokens: agent.max_tokens,
    system: [{ type: "text", text: agent.system_prompt, ...(caching ? { cache_control: EPHEMERAL } : {}) }],
    ...(tools.length ? { tools } : {}),
    messages: caching ? withMovingBreakpoint(messages) : messages,
  };
}

/** A copy of the conversation whose newest content block carries a cache breakpoint. */
function withMovingBreakpoint(messages: Message[]): Message[] {
  if (messages.length === 0) return messages;
  const out = messages.slice();
  const lastMsg = out[out.length - 1]!;
  const blocks: Anthropic.ContentBlockParam[] =
    typeof lastMsg.content === "string" ? [{ type: "text", text: lastMsg.content }] : lastMsg.content.slice();
  const tail = blocks[blocks.length - 1];
  if (tail && tail.type !== "thinking" && tail.type !== "redacted_thinking") {
    blocks[blocks.length - 1] = { ...tail, cache_control: EPHEMERAL } as Anthropic.ContentBlockParam;
  }
  out[out.length - 1] = { ...lastMsg, content: blocks } as Message;
  return out;
}
