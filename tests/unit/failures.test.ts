// Failures in words (lib/failures.ts, lib/llm/errors.ts): each kind of failure the night can bring is classified,
// said in one sentence, and never stored as a fragment of a response body.
import Anthropic from "@anthropic-ai/sdk";
import { describe, expect, test } from "vitest";
import { classifyFailure, failureReason, rawDetail } from "@/lib/failures";
import { classifyModelError } from "@/lib/llm/errors";

const apiError = (status: number, message: string, headers: Record<string, string> = {}) =>
  Anthropic.APIError.generate(status, { type: "error", error: { type: "x", message } }, undefined, new Headers(headers));

const APP_DIED = "The app running the task stopped answering the engine (it crashed or was unreachable), and the engine gave up on the run.";

describe("classifyFailure", () => {
  test.each([
    [apiError(529, "Overloaded"), "provider_down", true, "Claude was overloaded (529) and did not recover within the retries."],
    [apiError(503, "Service unavailable"), "provider_down", true, "Claude had a server error (503)."],
    [apiError(504, "Gateway timeout"), "timeout", true, "Claude did not answer in time (504)."],
    [apiError(429, "Rate limited", { "retry-after": "30" }), "limit_hit", false, "Claude's rate limit was hit (429) and the retries ran out."],
    [apiError(401, "invalid x-api-key"), "provider_refused", false, "Claude refused our credentials (401); check the API key."],
    [new Anthropic.APIConnectionTimeoutError(), "timeout", true, "Claude did not answer in time."],
    [new Anthropic.APIConnectionError({ message: "Connection error." }), "provider_down", true, "Claude could not be reached (connection refused or reset)."],
    [new TypeError("terminated"), "answer_corrupted", true, "Claude's answer was cut off mid-way (the connection closed before it ended)."],
    [new SyntaxError(`Unexpected token '<', "<html><body>secret page" is not valid JSON`), "answer_corrupted", false, "Claude's answer arrived corrupted (not valid JSON)."],
    [new Error("wall clock (900 s) reached before turn 4"), "limit_hit", false, "A limit stopped the task: wall clock (900 s) reached before turn 4."],
    [new RangeError("Invalid array length"), "our_bug", false, "Nightshift hit an internal error (RangeError); the detail is kept for the developers."],
    // The engine gave up on a run because the app itself kept dying: our side, not Claude's, and no outage.
    [new Error("request to http://127.0.0.1:3000/api/inngest failed: socket hang up (ECONNRESET)"), "our_bug", false, APP_DIED],
    [new Error("HTTP 502 from the app"), "our_bug", false, APP_DIED],
    // web_fetch's own network error names a host, not a URL: still a provider that could not be reached.
    [new Error("request to example.com failed: ECONNREFUSED connect ECONNREFUSED"), "provider_down", true, "Claude could not be reached (connection refused or reset)."],
  ])("%s", (err, kind, outage, summary) => {
    const f = classifyFailure(err);
    expect([f.kind, f.outage, f.summary]).toEqual([kind, outage, summary]);
  });

  test("errors rebuilt from a run's { name, message } classify the same as the originals (onFailure)", () => {
    for (const err of [apiError(529, "Overloaded"), apiError(400, "max_tokens: too large"), new TypeError("terminated"), new SyntaxError("Unexpected end of JSON input")]) {
      const rebuilt = classifyModelError(err);
      const f = classifyFailure({ name: rebuilt.name, message: rebuilt.message });
      expect(f.kind).toBe(classifyFailure(err).kind);
    }
    expect(classifyFailure({ name: "Error", message: "Claude API 400: max_tokens: too large" }).summary).toBe(
      "Claude refused the request as invalid (400): max_tokens: too large.",
    );
  });

  test("a response body never ends up in the stored detail or the words", () => {
    const err = new SyntaxError(`Unexpected token '<', "<html><body>secret page" is not valid JSON`);
    expect(JSON.stringify(rawDetail(err))).not.toContain("secret page");
    expect(classifyModelError(err).message).not.toContain("secret page");
    expect(JSON.stringify(classifyFailure(err))).not.toContain("secret page");
  });

  test("status_reason says whether it was retried", () => {
    const f = classifyFailure(apiError(529, "Overloaded"));
    expect(failureReason(f, { retried: true, attempts: 5 })).toBe("Claude was overloaded (529) and did not recover within the retries. Gave up after 5 attempts.");
    expect(failureReason(classifyFailure(apiError(400, "bad")), { retried: false })).toBe(
      "Claude refused the request as invalid (400): bad. Not retried: it would fail the same way again.",
    );
  });
});
