// How an agent's Messages request is built: tools from the registry, prompt-cache breakpoints on the stable
// prefix and on the newest message, and Claude's server-side web search only when asked for.
import { describe, expect, test } from "vitest";
import type { AgentConfig } from "@/lib/agents/catalog";
import { buildRequest } from "@/lib/agents/request";

const agent: AgentConfig = {
  id: "research",
  model: "claude-sonnet-4-6",
  system_prompt: "You research.",
  max_turns: 5,
  max_tokens: 1000,
  wall_clock_seconds: 600,
  tools: ["web_fetch", "save_artifact"],
  requires_approval: false,
  approval_timeout_seconds: 86_400,
  approval_auto_action: "reject",
};

describe("buildRequest", () => {
  test("cache breakpoints sit on the last tool, the system prompt and the newest message block only", () => {
    const req = buildRequest(
      agent,
      [
        { role: "user", content: "first" },
        { role: "assistant", content: [{ type: "text", text: "ok" }] },
        { role: "user", content: "second" },
      ],
      { serverWebSearch: false },
    );
    const tools = req.tools as { name: string; cache_control?: unknown }[];
    expect(tools.map((t) => t.name)).toEqual(["web_fetch", "save_artifact"]);
    expect(tools.map((t) => Boolean(t.cache_control))).toEqual([false, true]);
    expect(req.system).toEqual([{ type: "text", text: "You research.", cache_control: { type: "ephemeral" } }]);
    const marked = JSON.stringify(req.messages).match(/cache_control/g) ?? [];
    expect(marked).toHaveLength(1);
    expect(req.messages[2]).toEqual({ role: "user", content: [{ type: "text", text: "second", cache_control: { type: "ephemeral" } }] });
    expect(req.max_tokens).toBe(1000);
  });

  test("the caller's conversation is not modified", () => {
    const messages = [{ role: "user" as const, content: "keep me" }];
    buildRequest(agent, messages, { serverWebSearch: false });
    expect(messages).toEqual([{ role: "user", content: "keep me" }]);
  });

  test("server-side web search is added (and carries the tools breakpoint) only when enabled", () => {
    const withSearch = buildRequest(agent, [{ role: "user", content: "x" }], { serverWebSearch: true });
    const tools = withSearch.tools as { name: string; type?: string; max_uses?: number; cache_control?: unknown }[];
    expect(tools.at(-1)).toEqual({ type: "web_search_20250305", name: "web_search", max_uses: 5, cache_control: { type: "ephemeral" } });
    const without = buildRequest(agent, [{ role: "user", content: "x" }], { serverWebSearch: false });
    expect((without.tools as { name: string }[]).some((t) => t.name === "web_search")).toBe(false);
  });

  test("with caching off nothing carries cache_control (bench:cost's baseline)", () => {
    const req = buildRequest(agent, [{ role: "user", content: "x" }], { serverWebSearch: false, promptCaching: false });
    expect(JSON.stringify(req)).not.toContain("cache_control");
  });
});
