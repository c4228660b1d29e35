// The worst case a call may cost (no database): it must be an upper bound of what costMicros charges for any usage
// the call can produce, and the character-free input estimate must bound the tokens of any text.
import { describe, expect, test } from "vitest";
import { estimateInputTokensUpperBound, IMAGE_TOKENS_BOUND, TOOL_USE_OVERHEAD_TOKENS, worstCaseMicros } from "../../../lib/budget";
import { costMicros, PRICES } from "../../../lib/llm/prices";

describe("worstCaseMicros", () => {
  test("prices input at the dearest input rate (cache write) and max_tokens at the output rate, rounded up", () => {
    // Sonnet: cache write $3.75/MTok, output $15/MTok.
    expect(worstCaseMicros("claude-sonnet-4-6", { inputTokens: 10_000, maxTokens: 2048 })).toBe(37_500 + 30_720);
    expect(worstCaseMicros("claude-haiku-4-5", { inputTokens: 1, maxTokens: 0 })).toBe(2); // 1.25 → 2
    expect(worstCaseMicros("claude-sonnet-4-5-20250929", { inputTokens: 0, maxTokens: 1 })).toBe(15);
    expect(worstCaseMicros("claude-sonnet-4-6", { inputTokens: 0, maxTokens: 0, extraMicros: 10_000 })).toBe(10_000);
    expect(() => worstCaseMicros("gpt-4", { inputTokens: 1, maxTokens: 1 })).toThrow(/no price/);
    expect(() => worstCaseMicros("claude-sonnet-4-6", { inputTokens: -1, maxTokens: 1 })).toThrow();
  });

  test("bounds costMicros for every split of the input into plain, cache-write and cache-read tokens", () => {
    for (const model of Object.keys(PRICES)) {
      const inputTokens = 12_345;
      const maxTokens = 4096;
      const bound = worstCaseMicros(model, { inputTokens, maxTokens });
      for (const [plain, write, read] of [
        [inputTokens, 0, 0],
        [0, inputTokens, 0],
        [0, 0, inputTokens],
        [100, inputTokens - 100, 0],
        [5, 7_000, inputTokens - 7_005],
      ] as const) {
        for (const output of [0, 1, maxTokens]) {
          const actual = costMicros(model, {
            input_tokens: plain,
            output_tokens: output,
            cache_creation_input_tokens: write,
            cache_read_input_tokens: read,
          });
          expect(actual, `${model} ${plain}/${write}/${read}/${output}`).toBeLessThanOrEqual(bound);
        }
      }
      expect(costMicros(model, { input_tokens: 0, output_tokens: maxTokens, cache_creation_input_tokens: inputTokens })).toBe(bound);
    }
  });
});

describe("estimateInputTokensUpperBound", () => {
  const utf8 = (s: string) => new TextEncoder().encode(s).length;

  test("is at least one token per UTF-8 byte of every text, whatever the script", () => {
    for (const text of ["Plain English prose about Postgres row locks. ".repeat(50), "夜勤のエージェントが予算を守る。".repeat(50), "🦀🐘".repeat(100), "aZ3+/x9Q".repeat(200)]) {
      const n = estimateInputTokensUpperBound({ system: "sys", messages: [{ role: "user", content: text }] });
      expect(n).toBeGreaterThanOrEqual(utf8(text) + utf8("sys"));
      expect(n).toBeLessThan(utf8(text) + 200);
      // chars/2 — the tempting heuristic — falls below the byte count for CJK text and emoji.
    }
  });

  test("walks system blocks, tool results and tool definitions; images count a fixed bound instead of their bytes", () => {
    const image = { type: "image", source: { type: "base64", media_type: "image/png", data: "A".repeat(500_000) } };
    const params = {
      system: [{ type: "text", text: "You are careful.", cache_control: { type: "ephemeral" } }],
      messages: [
        { role: "user", content: [{ type: "text", text: "look" }, image] },
        { role: "assistant", content: [{ type: "tool_use", id: "toolu_1", name: "web_fetch", input: { url: "https://example.com/" } }] },
        { role: "user", content: [{ type: "tool_result", tool_use_id: "toolu_1", content: "x".repeat(3000) }] },
      ],
      tools: [{ name: "web_fetch", description: "GET a page", input_schema: { type: "object", properties: { url: { type: "string" } } } }],
    };
    const n = estimateInputTokensUpperBound(params);
    expect(n).toBeGreaterThan(3000 + IMAGE_TOKENS_BOUND + TOOL_USE_OVERHEAD_TOKENS);
    expect(n).toBeLessThan(3000 + IMAGE_TOKENS_BOUND + TOOL_USE_OVERHEAD_TOKENS + 1000);
    // The caller's params are not modified.
    expect(image.source.data).toHaveLength(500_000);
  });

  test("refuses a PDF document, which has no cheap bound", () => {
    expect(() =>
      estimateInputTokensUpperBound({
        messages: [{ role: "user", content: [{ type: "document", source: { type: "base64", media_type: "application/pdf", data: "JVBERi0=" } }] }],
      }),
    ).toThrow(/count the request's tokens/);
    expect(
      estimateInputTokensUpperBound({
        messages: [{ role: "user", content: [{ type: "document", source: { type: "text", media_type: "text/plain", data: "hello" } }] }],
      }),
    ).toBeGreaterThan(5);
  });
});
