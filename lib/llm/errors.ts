// Classifies a failed model call for the durable step: rate limits, overload and server errors are retried
// (honouring retry-after up to a bound); an invalid request will fail the same way again, so it is not.
import Anthropic from "@anthropic-ai/sdk";
import { NonRetriableError, RetryAfterError } from "inngest";

export const MAX_RETRY_AFTER_MS = 5 * 60_000;

export function classifyModelError(err: unknown): Error {
  if (err instanceof Anthropic.APIError && typeof err.status === "number") {
    const status = err.status;
    const message = `Claude API ${status}: ${readableMessage(err)}`;
    if (status === 429 || status === 529 || status >= 500 || status === 408) {
      const after = retryAfterMs(err.headers);
      return after !== null ? new RetryAfterError(message, Math.min(after, MAX_RETRY_AFTER_MS)) : new Error(message);
    }
    // 400 invalid request, 401/403 auth, 404 unknown model, 413 too large: retrying cannot help.
    return new NonRetriableError(message);
  }
  if (err instanceof Anthropic.APIConnectionTimeoutError) return new Error("Claude API timed out: no answer in time");
  if (err instanceof Anthropic.APIConnectionError) return new Error(`Claude API unreachable: ${err.message}`);
  // Errors in words, never the raw fragment: a SyntaxError's message quotes the body it choked on, and a body cut off
  // mid-way surfaces as undici's bare "TypeError: terminated". Both are worth a retry.
  if (err instanceof SyntaxError) return new Error("Claude API answer corrupted: the response was not valid JSON");
  if (err instanceof TypeError && /^terminated$|other side closed/i.test(err.message)) {
    return new Error("Claude API answer cut off mid-way: the connection closed before the body ended");
  }
  return err instanceof Error ? err : new Error(String(err));
}

function readableMessage(err: InstanceType<typeof Anthropic.APIError>): string {
  const body = err.error as { error?: { message?: string } } | undefined;
  return body?.error?.message ?? err.message;
}

function retryAfterMs(headers: Headers | undefined): number | null {
  const raw = headers?.get("retry-after");
  if (!raw) return null;
  const seconds = Number(raw);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const at = Date.parse(raw);
  return Number.isNaN(at) ? null : Math.max(0, at - Date.now());
}
