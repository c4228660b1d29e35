// The real @anthropic-ai/sdk against the offline Claude double (local/claude/). Every test uses its own
// scenario, so the file's tests could run concurrently against one double without interfering.
import { randomUUID } from "node:crypto";
import Anthropic, { APIError } from "@anthropic-ai/sdk";
import { afterAll, beforeAll, describe, expect, onTestFinished, test, vi } from "vitest";
import { claudeDoubleControl } from "../../local/claude/client";
import { OFFLINE_PREFIX, scenarioMarker, startClaudeDouble, type ClaudeDouble } from "../../local/claude/server";

const MODEL = "claude-sonnet-4-5";
let double: ClaudeDouble;

beforeAll(async () => {
  double = await startClaudeDouble({ batchDelayMs: 150 });
  // The SDK warns on every call that claude-sonnet-4-5 (the model the app's agents use) is deprecated.
  const warn = console.warn.bind(console);
  vi.spyOn(console, "warn").mockImplementation((...args: unknown[]) => {
    if (!String(args[0]).includes("is deprecated and will reach end-of-life")) warn(...args);
  });
});
afterAll(async () => {
  await double?.stop();
});

const client = (maxRetries = 2) => new Anthropic({ apiKey: "sk-offline-test", baseURL: double.url, maxRetries });
const newScenario = (name: string) => `${name}-${randomUUID().slice(0, 8)}`;

const webFetch: Anthropic.Tool = {
  name: "web_fetch",
  description: "Fetch a web page over HTTP GET and return its text.",
  input_schema: {
    type: "object",
    properties: { url: { type: "string", format: "uri" }, max_bytes: { type: "integer", minimum: 1 } },
    required: ["url"],
  },
};

// ~1,500 tokens: above Sonnet 4.5's 1,024-token minimum cacheable prefix.
const LONG_SYSTEM = Array.from(
  { length: 60 },
  (_, i) => `Rule ${i + 1}: the research agent cites every source it uses and never invents a URL or a quotation.`,
).join("\n");

describe("messages", () => {
  test("a round-trip returns a plainly offline, deterministic answer with plausible usage", async () => {
    const s = newScenario("roundtrip");
    const prompt = `${scenarioMarker(s)} Summarise this week's news about solid-state batteries in three bullet points.`;
    const params: Anthropic.MessageCreateParamsNonStreaming = {
      model: MODEL,
      max_tokens: 512,
      system: "You are a concise research assistant.",
      messages: [{ role: "user", content: prompt }],
    };
    const { data: msg, response } = await client().messages.create(params).withResponse();

    expect(msg.id).toMatch(/^msg_/);
    expect(msg.type).toBe("message");
    expect(msg.role).toBe("assistant");
    expect(msg.model).toBe(MODEL);
    expect(msg.stop_reason).toBe("end_turn");
    expect(msg.stop_sequence).toBeNull();
    expect(response.headers.get("request-id")).toMatch(/^req_/);
    const block = msg.content[0];
    expect(block?.type).toBe("text");
    const text = (block as Anthropic.TextBlock).text;
    expect(text.startsWith(OFFLINE_PREFIX)).toBe(true);
    expect(text).toContain("solid-state batteries");
    expect(text).not.toContain("[[scenario:");

    // ~4 characters per token over system + message, plus framing.
    const chars = prompt.length + (params.system as string).length;
    expect(msg.usage.input_tokens).toBeGreaterThanOrEqual(Math.floor(chars / 4));
    expect(msg.usage.input_tokens).toBeLessThan(Math.ceil(chars / 4) + 20);
    expect(msg.usage.output_tokens).toBe(Math.ceil(text.length / 4));
    expect(msg.usage.cache_creation_input_tokens).toBe(0);
    expect(msg.usage.cache_read_input_tokens).toBe(0);

    const again = await client().messages.create(params);
    expect(again.content).toEqual(msg.content);
    expect(again.id).not.toBe(msg.id);
  });

  test("output is bounded by max_tokens and stop_sequences", async () => {
    const base = { model: MODEL, messages: [{ role: "user" as const, content: "Write a long essay about tides." }] };
    const cut = await client().messages.create({ ...base, max_tokens: 5 });
    expect(cut.stop_reason).toBe("max_tokens");
    expect(cut.usage.output_tokens).toBe(5);
    expect((cut.content[0] as Anthropic.TextBlock).text.length).toBeLessThanOrEqual(20);

    const stopped = await client().messages.create({ ...base, max_tokens: 500, stop_sequences: ["You asked"] });
    expect(stopped.stop_reason).toBe("stop_sequence");
    expect(stopped.stop_sequence).toBe("You asked");
    expect((stopped.content[0] as Anthropic.TextBlock).text).not.toContain("You asked");
  });

  test("a scripted tool_use flows back as tool_result and the next turn ends with end_turn", async () => {
    const s = newScenario("tools");
    double.script(s, [{ tool_use: { name: "web_fetch", input: { url: "https://example.org/report" } } }]);
    const messages: Anthropic.MessageParam[] = [{ role: "user", content: `${scenarioMarker(s)} Research the report.` }];
    const c = client();

    const first = await c.messages.create({ model: MODEL, max_tokens: 1024, tools: [webFetch], messages });
    expect(first.stop_reason).toBe("tool_use");
    const call = first.content.find((b): b is Anthropic.ToolUseBlock => b.type === "tool_use")!;
    expect(call.id).toMatch(/^toolu_/);
    expect(call.name).toBe("web_fetch");
    expect(call.input).toEqual({ url: "https://example.org/report" });

    messages.push({ role: "assistant", content: first.content as Anthropic.ContentBlockParam[] });
    messages.push({ role: "user", content: [{ type: "tool_result", tool_use_id: call.id, content: "Revenue grew 12% in 2024." }] });
    const second = await c.messages.create({ model: MODEL, max_tokens: 1024, tools: [webFetch], messages });
    expect(second.stop_reason).toBe("end_turn");
    const text = (second.content[0] as Anthropic.TextBlock).text;
    expect(text).toContain("web_fetch");
    expect(text).toContain("Revenue grew 12%");
    expect(second.usage.input_tokens).toBeGreaterThan(first.usage.input_tokens);

    const log = double.calls({ scenario: s });
    expect(log.map((l) => [l.turn, l.status, l.outcome])).toEqual([
      [0, 200, "tool_use"],
      [1, 200, "default"],
    ]);
    expect(new Set(log.map((l) => l.fingerprint)).size).toBe(2);
  });

  test("several tool calls in one turn, and an omitted input is synthesized from the schema", async () => {
    const s = newScenario("multi-tools");
    double.script(s, [{ text: "Fetching both.", tool_use: [{ name: "web_fetch" }, { name: "web_fetch", input: { url: "https://b.example" } }] }]);
    const msg = await client().messages.create({
      model: MODEL,
      max_tokens: 1024,
      tools: [webFetch],
      messages: [{ role: "user", content: `${scenarioMarker(s)} go` }],
    });
    expect(msg.content.map((b) => b.type)).toEqual(["text", "tool_use", "tool_use"]);
    const [, a, b] = msg.content as [Anthropic.TextBlock, Anthropic.ToolUseBlock, Anthropic.ToolUseBlock];
    expect(a.input).toEqual({ url: "https://example.com/offline" });
    expect(b.input).toEqual({ url: "https://b.example" });
    expect(a.id).not.toBe(b.id);
  });

  test("malformed tool input is an object that breaks the tool's schema", async () => {
    const s = newScenario("malformed");
    double.script(s, [{ malformed_tool_input: "web_fetch" }]);
    const msg = await client().messages.create({
      model: MODEL,
      max_tokens: 1024,
      tools: [webFetch],
      messages: [{ role: "user", content: `${scenarioMarker(s)} fetch it` }],
    });
    expect(msg.stop_reason).toBe("tool_use");
    const call = msg.content.find((b): b is Anthropic.ToolUseBlock => b.type === "tool_use")!;
    expect(call.name).toBe("web_fetch");
    expect(typeof call.input).toBe("object");
    const input = call.input as Record<string, unknown>;
    expect(input.url).toBeUndefined(); // required field missing
    expect(typeof input.max_bytes).toBe("string"); // integer field with the wrong type
    expect(double.calls({ scenario: s })[0]?.outcome).toBe("malformed_tool_input");
  });

  test("a script naming a tool the request does not offer fails loudly", async () => {
    const s = newScenario("bad-script");
    double.script(s, [{ tool_use: { name: "send_email" } }]);
    const err = await client()
      .messages.create({ model: MODEL, max_tokens: 100, tools: [webFetch], messages: [{ role: "user", content: `${scenarioMarker(s)} hi` }] })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Anthropic.BadRequestError);
    expect((err as APIError).message).toContain("send_email");
  });

  test("latency and usage overrides apply", async () => {
    const s = newScenario("latency");
    double.script(s, [{ latency_ms: 150, text: "slow answer", usage: { input_tokens: 48_000, output_tokens: 1_200 } }]);
    const t0 = Date.now();
    const msg = await client().messages.create({ model: MODEL, max_tokens: 2000, messages: [{ role: "user", content: `${scenarioMarker(s)} q` }] });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(150);
    expect((msg.content[0] as Anthropic.TextBlock).text).toBe("slow answer");
    expect(msg.usage.input_tokens).toBe(48_000);
    expect(msg.usage.output_tokens).toBe(1_200);
  });

  test("streaming delivers the same message through the SDK's stream helper", async () => {
    const s = newScenario("stream");
    double.script(s, [{ tool_use: { name: "web_fetch", input: { url: "https://example.org/a?b=c", max_bytes: 1000 } } }]);
    const stream = client().messages.stream({
      model: MODEL,
      max_tokens: 1024,
      tools: [webFetch],
      messages: [{ role: "user", content: `${scenarioMarker(s)} stream please` }],
    });
    const final = await stream.finalMessage();
    expect(final.stop_reason).toBe("tool_use");
    expect(final.content[0]).toMatchObject({ type: "tool_use", name: "web_fetch", input: { url: "https://example.org/a?b=c", max_bytes: 1000 } });
    expect(final.usage.output_tokens).toBeGreaterThan(0);

    const text = await client()
      .messages.stream({ model: MODEL, max_tokens: 1024, messages: [{ role: "user", content: "tell me about owls" }] })
      .finalText();
    expect(text.startsWith(OFFLINE_PREFIX)).toBe(true);
    expect(text).toContain("owls");
  });
});

describe("errors and retries", () => {
  test("a 429 with retry-after is retried by the SDK and then succeeds", async () => {
    const s = newScenario("429");
    double.script(s, [{ error: { status: 429, retry_after_s: 0.05 } }]);
    const msg = await client(2).messages.create({ model: MODEL, max_tokens: 100, messages: [{ role: "user", content: `${scenarioMarker(s)} hi` }] });
    expect(msg.stop_reason).toBe("end_turn");
    const log = double.calls({ scenario: s });
    expect(log.map((l) => l.status)).toEqual([429, 200]);
    expect(log[0]!.error_type).toBe("rate_limit_error");
    expect(log[0]!.fingerprint).toBe(log[1]!.fingerprint); // the same model turn, asked twice
  });

  test("the 429 carries Anthropic's error shape and the retry-after header", async () => {
    const s = newScenario("429-shape");
    double.script(s, [{ error: { status: 429, retry_after_s: 7, message: "slow down" } }]);
    const err = (await client(0)
      .messages.create({ model: MODEL, max_tokens: 100, messages: [{ role: "user", content: `${scenarioMarker(s)} hi` }] })
      .catch((e: unknown) => e)) as APIError;
    expect(err).toBeInstanceOf(Anthropic.RateLimitError);
    expect(err.status).toBe(429);
    expect(err.headers?.get("retry-after")).toBe("7");
    expect(err.requestID).toMatch(/^req_/);
    expect(err.error).toEqual({ type: "error", error: { type: "rate_limit_error", message: "slow down" }, request_id: err.requestID });
  });

  test("a 529 that persists surfaces as overloaded_error after maxRetries + 1 calls", async () => {
    const s = newScenario("529");
    double.script(s, [{ error: { status: 529, retry_after_s: 0.01 }, repeat: 10 }]);
    const err = (await client(2)
      .messages.create({ model: MODEL, max_tokens: 100, messages: [{ role: "user", content: `${scenarioMarker(s)} hi` }] })
      .catch((e: unknown) => e)) as APIError;
    expect(err).toBeInstanceOf(Anthropic.InternalServerError);
    expect(err.status).toBe(529);
    expect(err.type).toBe("overloaded_error");
    expect(double.calls({ scenario: s }).map((l) => l.status)).toEqual([529, 529, 529]);
    expect(double.pending(s)).toBe(7);
  });

  test("a 500 is retried", async () => {
    const s = newScenario("500");
    double.script(s, [{ error: { status: 500, retry_after_ms: 10 } }]);
    const msg = await client(2).messages.create({ model: MODEL, max_tokens: 100, messages: [{ role: "user", content: `${scenarioMarker(s)} hi` }] });
    expect(msg.type).toBe("message");
    const log = double.calls({ scenario: s });
    expect(log.map((l) => [l.status, l.error_type])).toEqual([
      [500, "api_error"],
      [200, null],
    ]);
  });

  test("a scripted 400 is not retried", async () => {
    const s = newScenario("400");
    double.script(s, [{ error: { status: 400, message: "scripted refusal" } }]);
    const err = (await client(3)
      .messages.create({ model: MODEL, max_tokens: 100, messages: [{ role: "user", content: `${scenarioMarker(s)} hi` }] })
      .catch((e: unknown) => e)) as APIError;
    expect(err).toBeInstanceOf(Anthropic.BadRequestError);
    expect(err.type).toBe("invalid_request_error");
    expect(double.calls({ scenario: s })).toHaveLength(1);
  });

  test("invalid requests get 400 invalid_request_error with a readable message, without consuming the script", async () => {
    const s = newScenario("invalid");
    double.script(s, [{ text: "kept for the valid request" }]);
    const c = client(3);
    const fail = (p: unknown) =>
      // An explicit timeout skips the SDK's own client-side max_tokens guard, so the double judges the request.
      c.messages.create(p as Anthropic.MessageCreateParamsNonStreaming, { timeout: 30_000 }).then(
        () => {
          throw new Error("expected a 400");
        },
        (e: APIError) => e,
      );
    const m = scenarioMarker(s);

    const noMax = await fail({ model: MODEL, messages: [{ role: "user", content: `${m} hi` }] });
    expect(noMax).toBeInstanceOf(Anthropic.BadRequestError);
    expect(noMax.type).toBe("invalid_request_error");
    expect(noMax.message).toContain("max_tokens: Field required");

    const twoUsers = await fail({ model: MODEL, max_tokens: 10, messages: [{ role: "user", content: `${m} a` }, { role: "user", content: "b" }] });
    expect(twoUsers.message).toMatch(/roles must alternate/);

    const strayResult = await fail({
      model: MODEL,
      max_tokens: 10,
      tools: [webFetch],
      messages: [
        { role: "user", content: `${m} a` },
        { role: "assistant", content: [{ type: "tool_use", id: "toolu_01A", name: "web_fetch", input: { url: "https://x.example" } }] },
        { role: "user", content: [{ type: "tool_result", tool_use_id: "toolu_01B", content: "page" }] },
      ],
    });
    expect(strayResult.message).toContain("toolu_01A");

    const unmatched = await fail({
      model: MODEL,
      max_tokens: 10,
      tools: [webFetch],
      messages: [{ role: "user", content: [{ type: "text", text: `${m} a` }, { type: "tool_result", tool_use_id: "toolu_zzz", content: "x" }] }],
    });
    expect(unmatched.message).toContain("unexpected `tool_use_id` found in `tool_result` blocks: toolu_zzz");

    const extra = await fail({ model: MODEL, max_tokens: 10, messages: [{ role: "user", content: `${m} a` }], temprature: 1 });
    expect(extra.message).toContain("temprature: Extra inputs are not permitted");

    const tooMany = await fail({ model: MODEL, max_tokens: 100_000, messages: [{ role: "user", content: `${m} a` }] });
    expect(tooMany.message).toContain("maximum allowed number of output tokens");

    const tooLong = await fail({ model: MODEL, max_tokens: 10, messages: [{ role: "user", content: `${m} ${"x".repeat(900_000)}` }] });
    expect(tooLong.message).toMatch(/^400 .*prompt is too long: \d+ tokens > 200000 maximum/);

    const log = double.calls({ scenario: s });
    expect(log).toHaveLength(7); // no retries
    expect(log.every((l) => l.status === 400 && l.outcome === "invalid")).toBe(true);
    expect(double.pending(s)).toBe(1);
  });

  test("authentication: a key in x-api-key or a bearer token is required", async () => {
    const body = JSON.stringify({ model: MODEL, max_tokens: 10, messages: [{ role: "user", content: "hi" }] });
    const headers = { "content-type": "application/json", "anthropic-version": "2023-06-01" };
    const none = await fetch(`${double.url}/v1/messages`, { method: "POST", headers, body });
    expect(none.status).toBe(401);
    const json = (await none.json()) as { type: string; error: { type: string; message: string } };
    expect(json.type).toBe("error");
    expect(json.error.type).toBe("authentication_error");
    expect(none.headers.get("request-id")).toMatch(/^req_/);

    const viaKey = await fetch(`${double.url}/v1/messages`, { method: "POST", headers: { ...headers, "x-api-key": "k" }, body });
    expect(viaKey.status).toBe(200);
    const viaToken = await new Anthropic({ authToken: "tok", baseURL: double.url }).messages.create({
      model: MODEL,
      max_tokens: 10,
      messages: [{ role: "user", content: "hi" }],
    });
    expect(viaToken.type).toBe("message");

    const unknown = await client().get("/v1/nope").catch((e: unknown) => e);
    expect(unknown).toBeInstanceOf(Anthropic.NotFoundError);
  });
});

describe("prompt caching and token counting", () => {
  const cachedRequest = (s: string, question: string): Anthropic.MessageCreateParamsNonStreaming => ({
    model: MODEL,
    max_tokens: 256,
    system: [
      { type: "text", text: LONG_SYSTEM, cache_control: { type: "ephemeral" } },
    ],
    tools: [webFetch],
    messages: [{ role: "user", content: `${scenarioMarker(s)} ${question}` }],
  });

  // count_tokens refuses Messages-only fields such as max_tokens, like the real endpoint.
  const countable = ({ max_tokens: _m, ...rest }: Anthropic.MessageCreateParamsNonStreaming) => rest;

  test("the first call writes the cached prefix, the next one reads it; the cache expires after 5 minutes", async () => {
    const s = newScenario("cache");
    const c = client();
    const first = await c.messages.create(cachedRequest(s, "What changed in battery chemistry?"));
    const total1 = (await c.messages.countTokens(countable(cachedRequest(s, "What changed in battery chemistry?")))).input_tokens;
    expect(first.usage.cache_creation_input_tokens).toBeGreaterThan(1_024);
    expect(first.usage.cache_read_input_tokens).toBe(0);
    expect(first.usage.cache_creation?.ephemeral_5m_input_tokens).toBe(first.usage.cache_creation_input_tokens);
    expect(first.usage.input_tokens + first.usage.cache_creation_input_tokens!).toBe(total1);

    const second = await c.messages.create(cachedRequest(s, "And in solar panels?"));
    expect(second.usage.cache_read_input_tokens).toBe(first.usage.cache_creation_input_tokens);
    expect(second.usage.cache_creation_input_tokens).toBe(0);
    // Only the uncached tail is billed as input: a small fraction of the whole prompt.
    const total2 = (await c.messages.countTokens(countable(cachedRequest(s, "And in solar panels?")))).input_tokens;
    expect(second.usage.input_tokens).toBeLessThan(total2 / 10);
    expect(second.usage.input_tokens + second.usage.cache_read_input_tokens!).toBe(total2);

    double.clock.advance(5 * 60_000 + 1);
    const third = await c.messages.create(cachedRequest(s, "And in wind?"));
    expect(third.usage.cache_read_input_tokens).toBe(0);
    expect(third.usage.cache_creation_input_tokens).toBe(first.usage.cache_creation_input_tokens);
  });

  test("a growing conversation reads the previous turn's prefix and writes only the new part", async () => {
    const s = newScenario("cache-turns");
    const c = client();
    const withBreakpointOnLast = (messages: Anthropic.MessageParam[]) =>
      messages.map((m, i) =>
        i === messages.length - 1
          ? { ...m, content: [{ type: "text" as const, text: m.content as string, cache_control: { type: "ephemeral" as const } }] }
          : m,
      );
    const history: Anthropic.MessageParam[] = [{ role: "user", content: `${scenarioMarker(s)} ${LONG_SYSTEM}` }];
    const t1 = await c.messages.create({ model: MODEL, max_tokens: 300, messages: withBreakpointOnLast(history) });
    expect(t1.usage.cache_creation_input_tokens).toBeGreaterThan(1_000);
    expect(t1.usage.input_tokens).toBe(0);

    history.push({ role: "assistant", content: (t1.content[0] as Anthropic.TextBlock).text });
    history.push({ role: "user", content: "Now list the rules about URLs." });
    const t2 = await c.messages.create({ model: MODEL, max_tokens: 300, messages: withBreakpointOnLast(history) });
    expect(t2.usage.cache_read_input_tokens).toBe(t1.usage.cache_creation_input_tokens);
    expect(t2.usage.cache_creation_input_tokens).toBeGreaterThan(0);
    expect(t2.usage.cache_creation_input_tokens).toBeLessThan(200);
  });

  test("a prefix below the model's minimum cacheable length is not cached", async () => {
    const s = newScenario("cache-small");
    const req: Anthropic.MessageCreateParamsNonStreaming = {
      model: MODEL,
      max_tokens: 50,
      system: [{ type: "text", text: "Short system prompt.", cache_control: { type: "ephemeral" } }],
      messages: [{ role: "user", content: `${scenarioMarker(s)} hi` }],
    };
    const a = await client().messages.create(req);
    const b = await client().messages.create(req);
    for (const m of [a, b]) {
      expect(m.usage.cache_creation_input_tokens).toBe(0);
      expect(m.usage.cache_read_input_tokens).toBe(0);
    }
  });

  test("count_tokens uses the same estimator and counts tools", async () => {
    const c = client();
    const base = { model: MODEL, messages: [{ role: "user" as const, content: "x".repeat(400) }] };
    const plain = await c.messages.countTokens(base);
    expect(plain.input_tokens).toBeGreaterThanOrEqual(100);
    expect(plain.input_tokens).toBeLessThan(110);
    const withTools = await c.messages.countTokens({ ...base, tools: [webFetch] });
    expect(withTools.input_tokens - plain.input_tokens).toBeGreaterThan(300); // definition + tool-use system prompt
    const created = await c.messages.create({ ...base, max_tokens: 10 });
    expect(created.usage.input_tokens).toBe(plain.input_tokens);
    expect(double.calls({ kind: "count_tokens" }).length).toBeGreaterThanOrEqual(2);
  });
});

describe("message batches", () => {
  test("create, poll until ended, read JSONL results through the SDK", async () => {
    const s = newScenario("batch");
    double.script(s, [{ tool_use: { name: "web_fetch", input: { url: "https://example.org" } } }, { error: { status: 529 } }]);
    const c = client();
    const batch = await c.messages.batches.create({
      requests: [
        { custom_id: "tool", params: { model: MODEL, max_tokens: 200, tools: [webFetch], messages: [{ role: "user", content: `${scenarioMarker(s)} one` }] } },
        { custom_id: "overloaded", params: { model: MODEL, max_tokens: 200, messages: [{ role: "user", content: `${scenarioMarker(s)} two` }] } },
        { custom_id: "plain", params: { model: MODEL, max_tokens: 200, messages: [{ role: "user", content: `${scenarioMarker(s)} three` }] } },
        { custom_id: "invalid", params: { model: MODEL, messages: [{ role: "user", content: "no max_tokens" }] } as never },
      ],
    });
    expect(batch.id).toMatch(/^msgbatch_/);
    expect(batch.type).toBe("message_batch");
    expect(batch.processing_status).toBe("in_progress");
    expect(batch.request_counts).toEqual({ processing: 4, succeeded: 0, errored: 0, canceled: 0, expired: 0 });
    expect(batch.results_url).toBeNull();

    let current = batch;
    const deadline = Date.now() + 10_000;
    while (current.processing_status !== "ended") {
      if (Date.now() > deadline) throw new Error("batch did not end");
      await new Promise((r) => setTimeout(r, 25));
      current = await c.messages.batches.retrieve(batch.id);
    }
    expect(current.request_counts).toEqual({ processing: 0, succeeded: 2, errored: 2, canceled: 0, expired: 0 });
    expect(current.results_url).toBe(`${double.url}/v1/messages/batches/${batch.id}/results`);
    expect(current.ended_at).not.toBeNull();

    const results: Anthropic.Messages.MessageBatchIndividualResponse[] = [];
    for await (const r of await c.messages.batches.results(batch.id)) results.push(r);
    const byId = Object.fromEntries(results.map((r) => [r.custom_id, r.result]));
    expect(Object.keys(byId).sort()).toEqual(["invalid", "overloaded", "plain", "tool"]);
    expect(byId.tool).toMatchObject({ type: "succeeded", message: { stop_reason: "tool_use", usage: { service_tier: "batch" } } });
    expect(byId.overloaded).toMatchObject({ type: "errored", error: { type: "error", error: { type: "overloaded_error" } } });
    expect(byId.invalid).toMatchObject({ type: "errored", error: { error: { type: "invalid_request_error", message: expect.stringContaining("max_tokens") } } });
    const plain = byId.plain as Anthropic.Messages.MessageBatchSucceededResult;
    expect((plain.message.content[0] as Anthropic.TextBlock).text.startsWith(OFFLINE_PREFIX)).toBe(true);

    const items = double.calls({ batch_id: batch.id, kind: "batch_request" });
    expect(items.map((i) => [i.custom_id, i.status])).toEqual([
      ["tool", 200],
      ["overloaded", 529],
      ["plain", 200],
      ["invalid", 400],
    ]);

    const listed = [];
    for await (const b of c.messages.batches.list({ limit: 1 })) listed.push(b.id);
    expect(listed).toContain(batch.id);
  });

  test("cancel ends a batch with its requests canceled; an unknown batch is 404", async () => {
    // A double whose batches never finish by themselves, so the cancel cannot race the end.
    const slow = await startClaudeDouble({ batchDelayMs: 3_600_000 });
    onTestFinished(() => slow.stop());
    const c = new Anthropic({ apiKey: "k", baseURL: slow.url, maxRetries: 0 });
    const batch = await c.messages.batches.create({
      requests: [{ custom_id: "a", params: { model: MODEL, max_tokens: 10, messages: [{ role: "user", content: "hi" }] } }],
    });
    const canceling = await c.messages.batches.cancel(batch.id);
    expect(canceling.processing_status).toBe("canceling");
    expect(canceling.cancel_initiated_at).not.toBeNull();
    const ended = await c.messages.batches.retrieve(batch.id);
    expect(ended.processing_status).toBe("ended");
    expect(ended.request_counts.canceled).toBe(1);
    const results = [];
    for await (const r of await c.messages.batches.results(batch.id)) results.push(r);
    expect(results).toEqual([{ custom_id: "a", result: { type: "canceled" } }]);
    expect(await c.messages.batches.delete(batch.id)).toEqual({ id: batch.id, type: "message_batch_deleted" });
    await expect(c.messages.batches.retrieve(batch.id)).rejects.toBeInstanceOf(Anthropic.NotFoundError);
  });
});

describe("control surface and isolation", () => {
  test("scripts, call log and reset over HTTP", async () => {
    const control = claudeDoubleControl(double.url);
    const s = newScenario("http");
    expect(await control.health()).toBe(true);
    expect(await control.script(s, [{ text: "from the HTTP script" }, { error: { status: 429, retry_after_s: 0.01 } }])).toBe(2);
    expect(await control.pending(s)).toBe(2);

    const c = client(2);
    const ask = () => c.messages.create({ model: MODEL, max_tokens: 100, messages: [{ role: "user", content: `${scenarioMarker(s)} hi` }] });
    expect(((await ask()).content[0] as Anthropic.TextBlock).text).toBe("from the HTTP script");
    expect(((await ask()).content[0] as Anthropic.TextBlock).text.startsWith(OFFLINE_PREFIX)).toBe(true); // after a retried 429

    const calls = await control.calls({ scenario: s });
    expect(calls.map((x) => x.status)).toEqual([200, 429, 200]);
    expect(calls[0]).not.toHaveProperty("body");
    const withBody = await control.calls({ scenario: s, include_body: true });
    expect(withBody[0]?.body).toMatchObject({ model: MODEL, max_tokens: 100 });

    await expect(control.script(s, [{ error: { status: 429 }, text: "both" } as never])).rejects.toThrow(/400/);
    const raw = await fetch(`${double.url}/_double/scripts`, { method: "POST", body: JSON.stringify({ scenario: s, steps: [{ bogus: 1 }] }) });
    expect(raw.status).toBe(400);

    await control.script(s, [{ text: "never used" }]);
    await control.reset(s);
    expect(await control.pending(s)).toBe(0);
    expect(await control.calls({ scenario: s })).toEqual([]);

    const before = double.clock.now();
    const after = await control.advanceClock(60_000);
    expect(after - before).toBeGreaterThanOrEqual(60_000);
  });

  test("concurrent scenarios consume only their own scripts; the header selects a scenario too", async () => {
    const a = newScenario("iso-a");
    const b = newScenario("iso-b");
    double.script(a, [{ text: "A1" }, { text: "A2" }]);
    double.script(b, [{ text: "B1" }, { text: "B2" }]);
    const c = client();
    const ask = (s: string) =>
      c.messages
        .create({ model: MODEL, max_tokens: 50, messages: [{ role: "user", content: `${scenarioMarker(s)} go` }] })
        .then((m) => (m.content[0] as Anthropic.TextBlock).text);
    const viaHeader = c.messages
      .create({ model: MODEL, max_tokens: 50, messages: [{ role: "user", content: "no marker here" }] }, { headers: { "x-double-scenario": b } })
      .then((m) => (m.content[0] as Anthropic.TextBlock).text);
    const unmarked = c.messages
      .create({ model: MODEL, max_tokens: 50, messages: [{ role: "user", content: "belongs to no scenario" }] })
      .then((m) => (m.content[0] as Anthropic.TextBlock).text);
    const answers = await Promise.all([ask(a), ask(b), ask(a), viaHeader, unmarked]);
    expect(answers.slice(0, 4).sort()).toEqual(["A1", "A2", "B1", "B2"]);
    expect(answers[4]!.startsWith(OFFLINE_PREFIX)).toBe(true);
    expect(double.calls({ scenario: a }).map((x) => x.outcome)).toEqual(["text", "text"]);
    expect(double.calls({ scenario: b })).toHaveLength(2);
    expect(double.pending(a) + double.pending(b)).toBe(0);
  });
});
