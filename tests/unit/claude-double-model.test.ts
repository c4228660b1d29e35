// Unit tests of the offline Claude double's pieces that need no server: the prompt cache model, the token
// estimator, request validation and tool-input generation.
import { describe, expect, test } from "vitest";
import { CACHE_LOOKBACK_BLOCKS, PromptCache, defaultMinCacheableTokens } from "../../local/claude/cache";
import { generate, malformedInput, synthesize } from "../../local/claude/model";
import { validateRequest, type MessagesRequest } from "../../local/claude/request";
import { countInputTokens, promptBlocks, textTokens, type PromptBlock } from "../../local/claude/tokens";

const MODEL = "claude-sonnet-4-5";
const blocks = (sizes: number[], breakpoints: Record<number, "5m" | "1h">, tag = "b"): PromptBlock[] =>
  sizes.map((tokens, i) => ({
    region: "messages",
    tokens,
    key: `${tag}${i}`,
    cache: breakpoints[i] ? { type: "ephemeral", ttl: breakpoints[i] } : undefined,
  }));

describe("prompt cache model", () => {
  test("write, read, refresh on hit, expire after the TTL", () => {
    let now = 0;
    const cache = new PromptCache(() => now);
    const b = blocks([2000, 100], { 0: "5m" });
    expect(cache.apply("p", MODEL, b, true)).toMatchObject({ input_tokens: 100, cache_creation_input_tokens: 2000, cache_read_input_tokens: 0 });
    now = 4 * 60_000;
    expect(cache.apply("p", MODEL, b, true)).toMatchObject({ input_tokens: 100, cache_creation_input_tokens: 0, cache_read_input_tokens: 2000 });
    now = 8 * 60_000; // 4 minutes after the refreshing hit: still live
    expect(cache.apply("p", MODEL, b, true).cache_read_input_tokens).toBe(2000);
    now = 14 * 60_000; // 6 minutes idle
    expect(cache.apply("p", MODEL, b, true).cache_creation_input_tokens).toBe(2000);
  });

  test("a 1h breakpoint outlives a 5m one and is reported separately", () => {
    let now = 0;
    const cache = new PromptCache(() => now);
    const b = blocks([1500, 1500, 50], { 0: "1h", 1: "5m" });
    const first = cache.apply("p", MODEL, b, true);
    expect(first.cache_creation).toEqual({ ephemeral_1h_input_tokens: 1500, ephemeral_5m_input_tokens: 1500 });
    now = 30 * 60_000;
    const later = cache.apply("p", MODEL, b, true);
    expect(later).toMatchObject({ cache_read_input_tokens: 1500, cache_creation_input_tokens: 1500, input_tokens: 50 });
  });

  test("the lookback reaches at most 20 blocks before a breakpoint", () => {
    const cache = new PromptCache(() => 0);
    const sizes = Array.from({ length: 40 }, (_, i) => (i === 0 ? 2000 : 10));
    cache.apply("p", MODEL, blocks(sizes.slice(0, 1), { 0: "5m" }), true);
    const near = cache.apply("p", MODEL, blocks(sizes.slice(0, CACHE_LOOKBACK_BLOCKS), { [CACHE_LOOKBACK_BLOCKS - 1]: "5m" }), false);
    expect(near.cache_read_input_tokens).toBe(2000);
    const far = cache.apply("p", MODEL, blocks(sizes.slice(0, CACHE_LOOKBACK_BLOCKS + 1), { [CACHE_LOOKBACK_BLOCKS]: "5m" }), false);
    expect(far.cache_read_input_tokens).toBe(0);
  });

  test("partitions and models do not share entries; uncommitted lookups write nothing", () => {
    const cache = new PromptCache(() => 0);
    const b = blocks([3000], { 0: "5m" });
    cache.apply("a", MODEL, b, false);
    expect(cache.apply("a", MODEL, b, true).cache_read_input_tokens).toBe(0);
    expect(cache.apply("a", MODEL, b, true).cache_read_input_tokens).toBe(3000);
    expect(cache.apply("b", MODEL, b, true).cache_read_input_tokens).toBe(0);
    expect(cache.apply("a", "claude-opus-4-1", b, true).cache_read_input_tokens).toBe(0);
  });

  test("minimum cacheable lengths follow the model", () => {
    expect(defaultMinCacheableTokens("claude-sonnet-4-5")).toBe(1024);
    expect(defaultMinCacheableTokens("claude-haiku-4-5")).toBe(4096);
    expect(defaultMinCacheableTokens("claude-opus-4-6")).toBe(4096);
    const cache = new PromptCache(() => 0);
    expect(cache.apply("p", "claude-haiku-4-5", blocks([3000, 10], { 0: "5m" }), true).cache_creation_input_tokens).toBe(0);
  });

  test("a 10-turn agent loop with cached system, tools and history cuts turns 2-10 input cost by over 60%", () => {
    // Sonnet prices per million tokens: input 3, 5m cache write 3.75, cache read 0.30.
    const cost = (u: { input_tokens: number; cache_creation_input_tokens: number; cache_read_input_tokens: number }) =>
      u.input_tokens * 3 + u.cache_creation_input_tokens * 3.75 + u.cache_read_input_tokens * 0.3;
    const system = "You are the research agent. ".repeat(300);
    const tools = [{ name: "web_fetch", description: "Fetch a page.", input_schema: { type: "object", properties: { url: { type: "string" } }, required: ["url"] } }];
    const run = (cached: boolean) => {
      const cache = new PromptCache(() => 0);
      const messages: MessagesRequest["messages"] = [{ role: "user", content: "Research solid-state batteries." }];
      let later = 0;
      for (let turn = 1; turn <= 10; turn++) {
        const withMarks = messages.map((m, i) =>
          cached && i === messages.length - 1 && Array.isArray(m.content)
            ? { ...m, content: m.content.map((b, j, all) => (j === all.length - 1 ? { ...b, cache_control: { type: "ephemeral" as const } } : b)) }
            : m,
        );
        const req: MessagesRequest = {
          model: MODEL,
          max_tokens: 1024,
          system: [{ type: "text", text: system, ...(cached ? { cache_control: { type: "ephemeral" as const } } : {}) }],
          tools,
          messages: withMarks,
        };
        const usage = cache.apply("", MODEL, promptBlocks(req), true);
        if (turn > 1) later += cost(usage);
        const id = `toolu_${turn}`;
        messages.push({ role: "assistant", content: [{ type: "tool_use", id, name: "web_fetch", input: { url: `https://example.com/${turn}` } }] });
        messages.push({ role: "user", content: [{ type: "tool_result", tool_use_id: id, content: "Page text. ".repeat(200) }] });
      }
      return later;
    };
    const uncached = run(false);
    const cached = run(true);
    expect(1 - cached / uncached).toBeGreaterThan(0.6);
  });
});

describe("token estimator", () => {
  test("about four characters per token, with message and tool overheads", () => {
    expect(textTokens("")).toBe(0);
    expect(textTokens("abcd")).toBe(1);
    expect(textTokens("abcde")).toBe(2);
    const req = (extra: Partial<MessagesRequest> = {}): MessagesRequest => ({
      model: MODEL,
      max_tokens: 10,
      messages: [{ role: "user", content: "x".repeat(400) }],
      ...extra,
    });
    expect(countInputTokens(req())).toBe(103);
    expect(countInputTokens(req({ system: "y".repeat(40) }))).toBe(103 + 10 + 2);
    const withTool = countInputTokens(req({ tools: [{ name: "t", input_schema: { type: "object" } }] }));
    expect(withTool - 103).toBeGreaterThan(346);
  });

  test("top-level cache_control marks the last block", () => {
    const b = promptBlocks({ model: MODEL, max_tokens: 1, cache_control: { type: "ephemeral" }, messages: [{ role: "user", content: "hi" }] });
    expect(b.at(-1)?.cache).toEqual({ type: "ephemeral" });
  });
});

describe("request validation", () => {
  const ok = { model: MODEL, max_tokens: 10, messages: [{ role: "user", content: "hi" }] };

  test("accepts a minimal request and refuses what the API refuses", () => {
    expect(validateRequest(ok, "create").ok).toBe(true);
    const msg = (body: unknown, kind: "create" | "count_tokens" = "create") => {
      const v = validateRequest(body, kind);
      return v.ok ? "ok" : v.message;
    };
    expect(msg({ ...ok, model: undefined })).toContain("model: Field required");
    expect(msg({ ...ok, model: "gpt-4" })).toBe("model: gpt-4");
    expect(msg({ ...ok, messages: [] })).toContain("at least one message");
    expect(msg({ ...ok, messages: [{ role: "assistant", content: "hi" }] })).toContain('first message must use the "user" role');
    expect(msg({ ...ok, messages: [{ role: "user", content: "" }] })).toContain("non-empty");
    expect(msg({ ...ok, messages: [{ role: "user", content: [{ type: "bogus" }] }] })).toContain("does not match any of the expected tags");
    const five = Array.from({ length: 5 }, () => ({ type: "text", text: "t", cache_control: { type: "ephemeral" } }));
    expect(msg({ ...ok, messages: [{ role: "user", content: five }] })).toContain("A maximum of 4 blocks with cache_control");
    expect(msg({ ...ok, tools: [{ name: "a b", input_schema: { type: "object" } }] })).toContain("tools.0.name");
    expect(msg({ ...ok, tool_choice: { type: "tool", name: "x" }, tools: [{ name: "y", input_schema: { type: "object" } }] })).toContain("tool_choice.name");
    expect(msg({ ...ok, thinking: { type: "enabled", budget_tokens: 2000 } })).toContain("budget_tokens");
    expect(msg(ok, "count_tokens")).toContain("max_tokens: Extra inputs are not permitted");
    expect(validateRequest({ ...ok, max_tokens: 0 }, "create", true).ok).toBe(false);
    expect(msg({ ...ok, messages: [{ role: "user", content: "x".repeat(900_000) }] })).toBe("ok"); // length is checked by the server
  });

  test("each tool_use needs a tool_result in the next message", () => {
    const v = validateRequest(
      {
        ...ok,
        tools: [{ name: "t", input_schema: { type: "object" } }],
        messages: [
          { role: "user", content: "go" },
          { role: "assistant", content: [{ type: "tool_use", id: "toolu_1", name: "t", input: {} }, { type: "tool_use", id: "toolu_2", name: "t", input: {} }] },
          { role: "user", content: [{ type: "tool_result", tool_use_id: "toolu_1", content: "r" }] },
        ],
      },
      "create",
    );
    expect(v.ok).toBe(false);
    expect(!v.ok && v.message).toContain("without `tool_result` blocks immediately after: toolu_2");
  });
});

describe("tool inputs", () => {
  const schema = {
    type: "object",
    properties: {
      to: { type: "string", format: "email" },
      subject: { type: "string", minLength: 3 },
      priority: { type: "string", enum: ["low", "high"] },
      retries: { type: "integer", minimum: 2 },
      tags: { type: "array", items: { type: "string" }, minItems: 1 },
      dry_run: { type: "boolean" },
    },
    required: ["to", "subject", "priority", "retries", "tags"],
  };

  test("synthesized input satisfies the schema", () => {
    expect(synthesize(schema, "send_email")).toEqual({
      to: "offline@example.com",
      subject: "offline subject",
      priority: "low",
      retries: 2,
      tags: ["offline tags"],
    });
  });

  test("malformed input drops a required field and mistypes the others", () => {
    const bad = malformedInput(schema);
    expect(bad).not.toHaveProperty("to");
    expect(bad).toMatchObject({ subject: 12345, priority: 12345, retries: "not-a-number", tags: "not-an-array", dry_run: "yes" });
    expect(malformedInput({ type: "object" })).toEqual({ __offline_unexpected_field: 12345 });
  });

  test("a forced tool_choice without a script yields a valid tool call", () => {
    const req: MessagesRequest = {
      model: MODEL,
      max_tokens: 500,
      tools: [{ name: "send_email", input_schema: schema }],
      tool_choice: { type: "tool", name: "send_email" },
      messages: [{ role: "user", content: "email the team" }],
    };
    const out = generate(req, undefined, "0".repeat(64));
    expect(out.stop_reason).toBe("tool_use");
    expect(out.content[0]).toMatchObject({ type: "tool_use", name: "send_email", input: { to: "offline@example.com" } });
  });
});
