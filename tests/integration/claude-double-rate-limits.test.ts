// Rate limits in the offline double (local/claude/rate-limits.ts), through the real SDK: the anthropic-ratelimit-*
// headers on every answer, a 429 rate_limit_error with retry-after when a bucket has no room, refill on the
// double's clock, output counted as generated (not at max_tokens), and batches not limited.
import Anthropic, { APIError } from "@anthropic-ai/sdk";
import { afterAll, beforeAll, expect, test } from "vitest";
import { scenarioMarker, startClaudeDouble, type ClaudeDouble } from "../../local/claude/server";
import { readRateLimitHeaders } from "../../lib/pacing";

const MODEL = "claude-haiku-4-5";
let double: ClaudeDouble;
let t = Date.parse("2026-11-29T02:00:00Z");

beforeAll(async () => {
  double = await startClaudeDouble({
    now: () => t,
    rateLimits: { [MODEL]: { requests_per_minute: 3, input_tokens_per_minute: 100_000, output_tokens_per_minute: 1_000 } },
  });
});
afterAll(async () => {
  await double?.stop();
});

const client = () => new Anthropic({ apiKey: "sk-offline-test", baseURL: double.url, maxRetries: 0 });
const ask = (max_tokens: number, model = MODEL) =>
  client().messages.create({ model, max_tokens, messages: [{ role: "user", content: "Say hello." }] }).withResponse();

test("requests per minute: headers count down, the 4th gets a 429 like the API's, and the bucket refills", async () => {
  double.rateLimits.configure({ [MODEL]: { requests_per_minute: 3, input_tokens_per_minute: 100_000, output_tokens_per_minute: 10_000 } });
  const remaining: (number | null)[] = [];
  for (let i = 0; i < 3; i++) {
    const { response } = await ask(50);
    const h = readRateLimitHeaders(response.headers);
    expect(h).toMatchObject({ requestsLimit: 3, inputLimit: 100_000, outputLimit: 10_000 });
    remaining.push(h.requestsRemaining);
    expect(response.headers.get("anthropic-ratelimit-requests-reset")).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  }
  expect(remaining).toEqual([2, 1, 0]);
  const err = await ask(50).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(APIError);
  const e = err as APIError;
  expect(e.status).toBe(429);
  expect(e.error).toMatchObject({ type: "error", error: { type: "rate_limit_error", message: expect.stringMatching(/^This request would exceed the rate limit for your organization \(offline-double\) of 3 requests per minute\./) } });
  expect(e.headers?.get("retry-after")).toBe("20");
  expect(e.headers?.get("anthropic-ratelimit-requests-remaining")).toBe("0");

  t += 20_000; // one request refilled
  await expect(ask(50)).resolves.toBeTruthy();
  await expect(ask(50)).rejects.toMatchObject({ status: 429 });
});

test("output tokens count as produced, max_tokens does not; other models and batches are not limited", async () => {
  double.rateLimits.configure({ [MODEL]: { output_tokens_per_minute: 1_000 } });
  // A max_tokens far above the limit is admitted: only what is generated counts.
  const { data, response } = await ask(4_000);
  expect(Number(response.headers.get("anthropic-ratelimit-output-tokens-remaining"))).toBe(1_000 - data.usage.output_tokens);
  // Two answers of 700 tokens: the second is admitted (the bucket was not empty) and leaves it 400 in debt.
  double.script("otpm", [{ text: "Long answer one.", usage: { output_tokens: 700 } }, { text: "Long answer two.", usage: { output_tokens: 700 } }]);
  const long = () => client().messages.create({ model: MODEL, max_tokens: 4_000, messages: [{ role: "user", content: `${scenarioMarker("otpm")} Write.` }] }).withResponse();
  t += 60_000; // full again
  expect(Number((await long()).response.headers.get("anthropic-ratelimit-output-tokens-remaining"))).toBe(300);
  expect(Number((await long()).response.headers.get("anthropic-ratelimit-output-tokens-remaining"))).toBe(0);
  const e = (await ask(10).catch((x: unknown) => x)) as APIError;
  expect(e.status).toBe(429);
  expect((e.error as { error: { message: string } }).error.message).toContain("of 1,000 output tokens per minute");
  // 401 tokens short at 1,000 a minute: 24.06 s.
  expect(e.headers?.get("retry-after")).toBe("25");
  t += 25_000;
  await expect(ask(10)).resolves.toBeTruthy();

  await expect(ask(1_000, "claude-sonnet-4-6")).resolves.toBeTruthy();
  const batch = await client().messages.batches.create({
    requests: [{ custom_id: "b1", params: { model: MODEL, max_tokens: 1_000, messages: [{ role: "user", content: "hi" }] } }],
  });
  expect(batch.processing_status).toBe("in_progress");
  expect(double.rateLimits.refused.get(MODEL)).toBe(3); // two in the first test, one here
}, 30_000);
