// A model of Anthropic's prompt cache, faithful in the parts cost accounting depends on:
// - The prompt is processed as tools → system → messages. A `cache_control` breakpoint caches the prefix
//   ending at its block; entries live 5 minutes (or 1 hour with ttl "1h"), refreshed on every hit.
// - A prefix shorter than the model's minimum cacheable length is not cached (silently, like the API).
// - On a request, the longest previously cached prefix that lies within 20 blocks before one of this
//   request's breakpoints is read (cache_read_input_tokens); the tokens from there up to the last breakpoint
//   are written (cache_creation_input_tokens); everything after the last breakpoint is plain input_tokens.
// Entries are kept per partition (model + scenario), so tests running at the same time don't warm each
// other's caches; the real cache is per organization and model.
import { sha256, type PromptBlock } from "./tokens";

export const CACHE_LOOKBACK_BLOCKS = 20;

const TTL_MS = { "5m": 5 * 60_000, "1h": 60 * 60_000 } as const;

/**
 * Minimum cacheable prompt length per model, from Anthropic's prompt caching documentation (as mirrored by
 * several gateways; an unknown model gets 1,024). Override with `minCacheableTokens` when it changes.
 */
export function defaultMinCacheableTokens(model: string): number {
  if (/(opus|fable|mythos)-5/.test(model)) return 512;
  if (/opus-4-[567]|haiku-4-5/.test(model)) return 4_096;
  if (/sonnet-4-6|haiku-3|3-haiku|3-5-haiku/.test(model)) return 2_048;
  return 1_024;
}

export interface CacheUsage {
  input_tokens: number;
  cache_creation_input_tokens: number;
  cache_read_input_tokens: number;
  cache_creation: { ephemeral_5m_input_tokens: number; ephemeral_1h_input_tokens: number };
}

interface Entry {
  expiresAt: number;
  ttlMs: number;
}

export class PromptCache {
  private entries = new Map<string, Entry>();

  constructor(
    private readonly now: () => number,
    private readonly minTokens: (model: string) => number = defaultMinCacheableTokens,
  ) {}

  private sweep(now: number): void {
    for (const [k, e] of this.entries) if (e.expiresAt <= now) this.entries.delete(k);
  }

  clear(partitionPrefix?: string): void {
    if (partitionPrefix === undefined) return this.entries.clear();
    for (const k of this.entries.keys()) if (k.startsWith(`${partitionPrefix}\u0000`)) this.entries.delete(k);
  }

  /**
   * Computes the usage split for a request and, when `commit` is true (a request the model actually
   * processed), writes and refreshes cache entries.
   */
  apply(partition: string, model: string, blocks: PromptBlock[], commit: boolean): CacheUsage {
    const now = this.now();
    if (commit && this.entries.size > 50_000) this.sweep(now);
    const cum: number[] = [];
    let total = 0;
    for (const b of blocks) cum.push((total += b.tokens));
    // Prefix hashes at every block boundary.
    const hashes: string[] = [];
    let h = sha256(`${partition}\u0000${model}`);
    for (const b of blocks) hashes.push((h = sha256(h + b.key)));
    const key = (i: number) => `${partition}\u0000${hashes[i]}`;

    const min = this.minTokens(model);
    const breakpoints = blocks
      .map((b, i) => (b.cache ? i : -1))
      .filter((i) => i >= 0 && cum[i]! >= min);
    const none: CacheUsage = {
      input_tokens: total,
      cache_creation_input_tokens: 0,
      cache_read_input_tokens: 0,
      cache_creation: { ephemeral_5m_input_tokens: 0, ephemeral_1h_input_tokens: 0 },
    };
    if (breakpoints.length === 0) return none;
    const last = breakpoints[breakpoints.length - 1]!;

    // Longest live cached prefix reachable from a breakpoint through the lookback window.
    let hit = -1;
    for (const bp of breakpoints) {
      for (let i = bp; i >= 0 && i > bp - CACHE_LOOKBACK_BLOCKS; i--) {
        const e = this.entries.get(key(i));
        if (e && e.expiresAt > now) {
          if (i > hit) hit = i;
          break;
        }
      }
    }
    const read = hit >= 0 ? cum[hit]! : 0;
    const creation = { ephemeral_5m_input_tokens: 0, ephemeral_1h_input_tokens: 0 };
    let from = read;
    for (const bp of breakpoints) {
      if (bp <= hit) continue;
      const seg = cum[bp]! - from;
      if (blocks[bp]!.cache?.ttl === "1h") creation.ephemeral_1h_input_tokens += seg;
      else creation.ephemeral_5m_input_tokens += seg;
      from = cum[bp]!;
    }
    if (commit) {
      if (hit >= 0) {
        const e = this.entries.get(key(hit))!;
        e.expiresAt = now + e.ttlMs;
      }
      for (const bp of breakpoints) {
        const ttlMs = TTL_MS[blocks[bp]!.cache?.ttl ?? "5m"];
        const prev = this.entries.get(key(bp));
        this.entries.set(key(bp), { ttlMs: Math.max(ttlMs, prev?.ttlMs ?? 0), expiresAt: Math.max(now + ttlMs, prev?.expiresAt ?? 0) });
      }
    }
    return {
      input_tokens: total - cum[last]!,
      cache_creation_input_tokens: creation.ephemeral_5m_input_tokens + creation.ephemeral_1h_input_tokens,
      cache_read_input_tokens: read,
      cache_creation: creation,
    };
  }
}
