// Rate limits in the offline double, enforced like the real API's (https://docs.claude.com/en/api/rate-limits):
// per model, requests (RPM), input tokens (ITPM) and output tokens (OTPM) per minute, each a token bucket that
// refills continuously up to its per-minute limit. A request is admitted only if all three have room: it takes
// one request and its input tokens (the API estimates input at request time), and the output bucket must not be
// empty. Output is counted as produced, only the tokens generated: "max_tokens does not factor into OTPM rate limit
// calculations" — the answer's output tokens are taken when it ends (the bucket may go below zero; later requests
// get 429s until it refills). Cache reads (which do not count toward ITPM) go back. Every answer carries the anthropic-ratelimit-* headers; a refused request gets a 429 rate_limit_error
// with retry-after, as the API sends it. Batches are not limited by these (the Batches API has its own limits).
// Models without a configured limit are not limited.
import { z } from "zod";

export const modelRateLimitsSchema = z.strictObject({
  requests_per_minute: z.number().int().positive().optional(),
  input_tokens_per_minute: z.number().int().positive().optional(),
  output_tokens_per_minute: z.number().int().positive().optional(),
});
/** Per model name; "*" applies to every model not named. */
export const rateLimitConfigSchema = z.record(z.string().min(1), modelRateLimitsSchema);
export type ModelRateLimits = z.infer<typeof modelRateLimitsSchema>;
export type RateLimitConfig = z.infer<typeof rateLimitConfigSchema>;

type Dim = "requests" | "input_tokens" | "output_tokens";
const DIMS: readonly Dim[] = ["requests", "input_tokens", "output_tokens"];
const LIMIT_KEY: Record<Dim, keyof ModelRateLimits> = {
  requests: "requests_per_minute",
  input_tokens: "input_tokens_per_minute",
  output_tokens: "output_tokens_per_minute",
};
const UNIT: Record<Dim, string> = { requests: "requests", input_tokens: "input tokens", output_tokens: "output tokens" };

class Bucket {
  private level: number;
  private at: number;
  constructor(readonly limit: number, now: number) {
    this.level = limit;
    this.at = now;
  }
  available(now: number): number {
    if (now > this.at) {
      this.level = Math.min(this.limit, this.level + (this.limit * (now - this.at)) / 60_000);
      this.at = now;
    }
    return this.level;
  }
  take(n: number, now: number) {
    this.available(now);
    this.level -= n;
  }
  give(n: number, now: number) {
    this.available(now);
    this.level = Math.min(this.limit, this.level + n);
  }
  /** ms until `n` is available (0 if it is). */
  waitFor(n: number, now: number): number {
    const have = this.available(now);
    return have >= n ? 0 : Math.ceil(((n - have) * 60_000) / this.limit);
  }
}

export interface Admission {
  ok: true;
  /** Call when the request ended: gives back unused output and cache reads; returns the headers to send. */
  settle(usage: { output_tokens: number; cache_read_input_tokens?: number } | null): Record<string, string>;
}
export interface Refusal {
  ok: false;
  status: 429;
  type: "rate_limit_error";
  message: string;
  headers: Record<string, string>;
}

export class RateLimiter {
  private config: RateLimitConfig;
  private buckets = new Map<string, Map<Dim, Bucket>>();
  /** 429s sent, per model. */
  readonly refused = new Map<string, number>();

  constructor(private readonly now: () => number, config: RateLimitConfig = {}) {
    this.config = rateLimitConfigSchema.parse(config);
  }

  configure(config: RateLimitConfig) {
    this.config = rateLimitConfigSchema.parse(config);
    this.buckets.clear();
  }

  limitsFor(model: string): ModelRateLimits | null {
    return this.config[model] ?? this.config["*"] ?? null;
  }

  private bucketsFor(model: string): Map<Dim, Bucket> | null {
    const limits = this.limitsFor(model);
    if (!limits) return null;
    let b = this.buckets.get(model);
    if (!b) {
      b = new Map();
      for (const d of DIMS) {
        const limit = limits[LIMIT_KEY[d]];
        if (limit) b.set(d, new Bucket(limit, this.now()));
      }
      this.buckets.set(model, b);
    }
    return b;
  }

  admit(model: string, inputTokens: number, maxTokens: number): Admission | Refusal {
    const b = this.bucketsFor(model);
    const now = this.now();
    if (!b || b.size === 0) return { ok: true, settle: () => ({}) };
    // Output is charged as produced: a request needs only that the output bucket is not empty.
    void maxTokens;
    const need: Record<Dim, number> = { requests: 1, input_tokens: inputTokens, output_tokens: 1 };
    let worst: { dim: Dim; ms: number } | null = null;
    for (const [d, bucket] of b) {
      // A request larger than a whole minute's limit passes when the bucket is full (it could never pass otherwise).
      const ms = bucket.waitFor(Math.min(need[d], bucket.limit), now);
      if (ms > 0 && (!worst || ms > worst.ms)) worst = { dim: d, ms };
    }
    if (worst) {
      this.refused.set(model, (this.refused.get(model) ?? 0) + 1);
      const limit = b.get(worst.dim)!.limit;
      return {
        ok: false,
        status: 429,
        type: "rate_limit_error",
        message:
          `This request would exceed the rate limit for your organization (offline-double) of ${limit.toLocaleString("en-US")} ${UNIT[worst.dim]} per minute. ` +
          "For details, refer to: https://docs.claude.com/en/api/rate-limits. You can see the response headers for current usage. " +
          "Please reduce the prompt length or the maximum tokens requested, or try again later. " +
          "You may also contact sales at https://www.anthropic.com/contact-sales to discuss your options for a rate limit increase.",
        headers: { "retry-after": String(Math.max(1, Math.ceil(worst.ms / 1000))), ...this.headers(b, now) },
      };
    }
    for (const [d, bucket] of b) if (d !== "output_tokens") bucket.take(Math.min(need[d], bucket.limit), now);
    return {
      ok: true,
      settle: (usage) => {
        const at = this.now();
        // The tokens generated, at most a minute's limit in debt.
        if (usage?.output_tokens) b.get("output_tokens")?.take(Math.min(usage.output_tokens, b.get("output_tokens")!.limit), at);
        if (usage?.cache_read_input_tokens) b.get("input_tokens")?.give(usage.cache_read_input_tokens, at);
        return this.headers(b, at);
      },
    };
  }

  /** What each of a model's buckets holds now (null: not limited). For benchmarks that watch the provider's side. */
  levels(model: string): Partial<Record<Dim, { limit: number; available: number }>> | null {
    const b = this.bucketsFor(model);
    if (!b) return null;
    const now = this.now();
    const out: Partial<Record<Dim, { limit: number; available: number }>> = {};
    for (const [d, bucket] of b) out[d] = { limit: bucket.limit, available: bucket.available(now) };
    return out;
  }

  /** The anthropic-ratelimit-* headers for a model's buckets (reset = when the bucket would be full again). */
  private headers(b: Map<Dim, Bucket>, now: number): Record<string, string> {
    const h: Record<string, string> = {};
    let tightest: { dim: Dim; ratio: number } | null = null;
    for (const [d, bucket] of b) {
      const have = bucket.available(now);
      const name = d === "requests" ? "requests" : d === "input_tokens" ? "input-tokens" : "output-tokens";
      h[`anthropic-ratelimit-${name}-limit`] = String(bucket.limit);
      h[`anthropic-ratelimit-${name}-remaining`] = String(Math.max(0, Math.floor(have)));
      h[`anthropic-ratelimit-${name}-reset`] = new Date(now + Math.ceil(((bucket.limit - have) * 60_000) / bucket.limit)).toISOString().replace(/\.\d{3}Z$/, "Z");
      if (d !== "requests" && (!tightest || have / bucket.limit < tightest.ratio)) tightest = { dim: d, ratio: have / bucket.limit };
    }
    if (tightest) {
      // anthropic-ratelimit-tokens-*: the most restrictive token limit currently in effect.
      const name = tightest.dim === "input_tokens" ? "input-tokens" : "output-tokens";
      for (const k of ["limit", "remaining", "reset"]) h[`anthropic-ratelimit-tokens-${k}`] = h[`anthropic-ratelimit-${name}-${k}`]!;
    }
    return h;
  }
}
