// Failures in words. Every failure that ends a task (or counts against a circuit breaker) is classified into one of a
// few kinds a person can act on, and said in one sentence; the raw detail is kept beside it, never instead of it.
// Raw detail never carries a fragment of a response body: a SyntaxError's message quotes the body it choked on, so
// only its name is kept.
import Anthropic from "@anthropic-ai/sdk";

export const FAILURE_KINDS = [
  "provider_refused", // the provider refused our request (400, 401, 403, 404, 413): retrying cannot help
  "provider_down", // the provider is down or overloaded (5xx, 529, connection refused or reset)
  "answer_corrupted", // an answer arrived broken (cut off mid-way, not JSON)
  "timeout", // no answer in time
  "tool_failed", // a tool the agent called failed
  "limit_hit", // a limit stopped it (rate limit, budget, wall clock, max turns)
  "our_bug", // none of the above: a defect in Nightshift
] as const;
export type FailureKind = (typeof FAILURE_KINDS)[number];

export interface Failure {
  kind: FailureKind;
  /** One sentence for a person. */
  summary: string;
  /** The failure says "the other side is down": it counts toward opening a circuit breaker. */
  outage: boolean;
  /** The HTTP status, when the provider answered with one. */
  status?: number;
  /** The raw detail, safe to store (no response bodies). */
  detail: { name: string; message: string };
}

/** What the engine says when its call to the app's serve route failed (local/engine: dispatch.ts, ops.ts). */
const APP_UNREACHABLE = /^request to https?:\/\/\S+ failed: |^HTTP \d{3} from the app\b|the app's response \(HTTP|the SDK reported no progress/;

const clip = (s: string, n: number) => (s.length <= n ? s : `${s.slice(0, n - 1)}…`);

/** The error's name and message, with anything that may quote a response body removed. */
export function rawDetail(err: unknown): { name: string; message: string } {
  if (err instanceof Anthropic.APIError) {
    // Its message is "<status> <the body as JSON>": keep the API's own one-line message instead.
    const said = (err.error as { error?: { message?: unknown } } | undefined)?.error?.message;
    return { name: err.name, message: clip(`Claude API ${err.status ?? "error"}: ${typeof said === "string" ? said : "no message"}`, 500) };
  }
  const e = err as { name?: unknown; message?: unknown } | null | undefined;
  const name = typeof e?.name === "string" ? e.name : typeof err;
  const message = typeof e?.message === "string" ? e.message : String(err);
  if (name === "SyntaxError" || /\bJSON\b/.test(message) && /Unexpected|not valid|parse/i.test(message)) {
    return { name, message: "the response body could not be parsed as JSON (not stored)" };
  }
  return { name, message: clip(message, 500) };
}

function httpStatus(err: unknown): number | undefined {
  if (err instanceof Anthropic.APIError && typeof err.status === "number") return err.status;
  const message = (err as { message?: unknown })?.message;
  const m = typeof message === "string" ? /\b(?:Claude API|status|HTTP) (\d{3})\b/.exec(message) : null;
  return m ? Number(m[1]) : undefined;
}

/**
 * Classifies any failure: an SDK error, an error rebuilt from a run's serialized `{ name, message }` (onFailure), or
 * anything thrown. `who` names the other side in the sentence ("Claude", "example.com").
 */
export function classifyFailure(err: unknown, who = "Claude"): Failure {
  const detail = rawDetail(err);
  const { name, message } = detail;
  const status = httpStatus(err);
  const f = (kind: FailureKind, summary: string, outage = false): Failure => ({ kind, summary, outage, detail, ...(status ? { status } : {}) });

  if (/circuit_open|circuit breaker/i.test(message)) return f("provider_down", `${who} is down: its circuit breaker is open, so the call was not made.`, false);
  // The engine could not get an answer from the app itself (it crashed, was killed, or answered garbage) and gave up
  // on the run: our side, not the provider's — checked before the status, since "HTTP 502 from the app" is no Claude 502.
  if (APP_UNREACHABLE.test(message)) {
    return { kind: "our_bug", summary: "The app running the task stopped answering the engine (it crashed or was unreachable), and the engine gave up on the run.", outage: false, detail };
  }
  if (/wall clock|max_turns|daily budget|budget of|exceeds .* whole daily budget/i.test(message)) {
    return f("limit_hit", `A limit stopped the task: ${clip(message.replace(/^.*?:\s*(?=wall|max_turns|one call|daily)/i, ""), 200)}.`);
  }
  // run-task gave up waiting for a dependency whose breaker stayed open (DEPENDENCY_GIVE_UP_MS).
  const gaveUp = /waited (\d+) h for (\S+), still down/.exec(message);
  if (gaveUp) return f("timeout", `${gaveUp[2]} stayed down for ${gaveUp[1]} h, and the run stopped waiting for it.`);
  if (status !== undefined) {
    if (status === 429) return f("limit_hit", `${who}'s rate limit was hit (429) and the retries ran out.`);
    if (status === 529) return f("provider_down", `${who} was overloaded (529) and did not recover within the retries.`, true);
    if (status === 408 || status === 504) return f("timeout", `${who} did not answer in time (${status}).`, true);
    if (status >= 500) return f("provider_down", `${who} had a server error (${status}).`, true);
    if (status === 401 || status === 403) return f("provider_refused", `${who} refused our credentials (${status}); check the API key.`);
    if (status === 404) return f("provider_refused", `${who} does not know what we asked for (404), e.g. an unknown model.`);
    if (status === 413) return f("provider_refused", `${who} refused the request as too large (413).`);
    const why = /^Claude API \d{3}: (.*)$/s.exec(message)?.[1];
    return f("provider_refused", `${who} refused the request as invalid (${status})${why ? `: ${clip(why, 200)}` : ""}.`);
  }
  if (/timeouts\.(finish|start)/.test(message)) {
    return f("timeout", "The run did not finish within its time limit (timeouts.finish) and was stopped.");
  }
  if (err instanceof Anthropic.APIConnectionTimeoutError || /timed? ?out|timeout|ETIMEDOUT|deadline/i.test(`${name} ${message}`)) {
    return f("timeout", `${who} did not answer in time.`, true);
  }
  if (name === "SyntaxError" || detail.message.includes("could not be parsed as JSON") || /corrupt|malformed|not valid JSON/i.test(message)) {
    return f("answer_corrupted", `${who}'s answer arrived corrupted (not valid JSON).`);
  }
  if (/^terminated$|cut off|other side closed|premature close|body.*(ended|closed)/i.test(message)) {
    return f("answer_corrupted", `${who}'s answer was cut off mid-way (the connection closed before it ended).`, true);
  }
  if (err instanceof Anthropic.APIConnectionError || /unreachable|ECONNREFUSED|ECONNRESET|ENOTFOUND|EAI_AGAIN|socket hang up|fetch failed|connection error/i.test(message)) {
    return f("provider_down", `${who} could not be reached (connection refused or reset).`, true);
  }
  if (/^tool[ -]|tool .*failed|ToolError/i.test(`${name} ${message}`)) return f("tool_failed", `A tool the agent called failed: ${clip(message, 200)}.`);
  return f("our_bug", `Nightshift hit an internal error (${name}); the detail is kept for the developers.`);
}

/** The sentence for status_reason: what happened, and whether it was retried. */
export function failureReason(failure: Failure, opts: { retried: boolean; attempts?: number }): string {
  const tail = opts.retried ? ` Gave up after ${opts.attempts ?? "its"} attempts.` : " Not retried: it would fail the same way again.";
  return `${failure.summary}${tail}`;
}
