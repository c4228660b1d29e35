// Model prices as data: micro-dollars per million tokens (so $3.00/MTok is 3_000_000). Update this table
// when Anthropic's price list changes; nothing else encodes a price.
export interface ModelPrice {
  input: number;
  output: number;
  /** 5-minute cache writes. */
  cacheWrite: number;
  cacheRead: number;
}

export const PRICES: Record<string, ModelPrice> = {
  "claude-opus-4-1": { input: 15_000_000, output: 75_000_000, cacheWrite: 18_750_000, cacheRead: 1_500_000 },
  "claude-opus-4-6": { input: 5_000_000, output: 25_000_000, cacheWrite: 6_250_000, cacheRead: 500_000 },
  "claude-opus-4-5": { input: 5_000_000, output: 25_000_000, cacheWrite: 6_250_000, cacheRead: 500_000 },
  "claude-sonnet-4-6": { input: 3_000_000, output: 15_000_000, cacheWrite: 3_750_000, cacheRead: 300_000 },
  "claude-sonnet-4-5": { input: 3_000_000, output: 15_000_000, cacheWrite: 3_750_000, cacheRead: 300_000 },
  "claude-sonnet-4": { input: 3_000_000, output: 15_000_000, cacheWrite: 3_750_000, cacheRead: 300_000 },
  "claude-haiku-4-5": { input: 1_000_000, output: 5_000_000, cacheWrite: 1_250_000, cacheRead: 100_000 },
};

/** Message Batches are billed at half price. */
export const BATCH_DISCOUNT = 0.5;

export interface Usage {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens?: number | null;
  cache_read_input_tokens?: number | null;
}

export function priceFor(model: string): ModelPrice {
  // Dated snapshots (claude-sonnet-4-5-20250929) cost what their alias costs.
  const price = PRICES[model] ?? PRICES[model.replace(/-\d{8}$/, "")];
  if (!price) throw new Error(`no price for model '${model}': add it to lib/llm/prices.ts`);
  return price;
}

/** Cost of one call in micro-dollars, rounded up so the ledger never under-counts. */
export function costMicros(model: string, usage: Usage, opts: { batch?: boolean } = {}): number {
  const p = priceFor(model);
  const raw =
    usage.input_tokens * p.input +
    usage.output_tokens * p.output +
    (usage.cache_creation_input_tokens ?? 0) * p.cacheWrite +
    (usage.cache_read_input_tokens ?? 0) * p.cacheRead;
  return Math.ceil((raw * (opts.batch ? BATCH_DISCOUNT : 1)) / 1_000_000);
}
