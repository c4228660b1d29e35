// Outage scripting for the offline double: faults that hold over time (on the double's clock, which tests can drive
// by hand), unlike scripts, which answer one request each. A fault applies to every API request it matches (model
// calls, token counts and batch calls alike — an outage takes the whole API down) and takes precedence over scripts,
// consuming none of their steps.
//
//   { kind: "outage", duration_ms, status? }     every request fails for duration_ms (status 529 by default; 0 =
//                                                 the connection is closed without an answer)
//   { kind: "errors", rate, seed?, status? }      a fraction `rate` of model calls fail: drawn from a seeded generator
//                                                 when `seed` is given, else spread evenly (exactly rate × calls)
//   { kind: "timeout", rate?, seed? }             requests are held unanswered until the client gives up
//   { kind: "slow", latency_ms, rate?, seed? }    requests are answered after latency_ms
//
// Outages take the whole API down (model calls, token counts, batches); the other kinds hit model calls
// (POST /v1/messages) only, so a rate means a rate of model calls. Every fault may carry `start_at` (ms on the double's clock; default: now) and `duration_ms` (default: for ever).
// Faults are global to the double (an outage is not per scenario): clear them after a test.
import { z } from "zod";

const window = {
  start_at: z.number().int().min(0).optional(),
  duration_ms: z.number().int().min(1).optional(),
};
const rate = z.number().min(0).max(1);
const seed = z.number().int().optional();

export const faultSchema = z.discriminatedUnion("kind", [
  z.strictObject({ kind: z.literal("outage"), ...window, duration_ms: z.number().int().min(1), status: z.number().int().refine((s) => s === 0 || (s >= 500 && s <= 599), "status must be 5xx, or 0 for a closed connection").optional() }),
  z.strictObject({ kind: z.literal("errors"), ...window, rate, seed, status: z.number().int().min(500).max(599).optional() }),
  z.strictObject({ kind: z.literal("timeout"), ...window, rate: rate.optional(), seed }),
  z.strictObject({ kind: z.literal("slow"), ...window, latency_ms: z.number().int().min(1).max(600_000), rate: rate.optional(), seed }),
]);
export type FaultSpec = z.infer<typeof faultSchema>;
export const faultsBodySchema = z.strictObject({ faults: z.array(faultSchema).min(1) });

/** What to do with one request. */
export type FaultAction =
  | { kind: "error"; status: number; fault: number }
  | { kind: "drop"; fault: number }
  | { kind: "hang"; fault: number }
  | { kind: "delay"; ms: number; fault: number };

interface Active {
  id: number;
  spec: FaultSpec;
  from: number;
  until: number;
  random: () => number;
  hits: number;
  seen: number;
}

/** mulberry32: a small, fast, seeded generator, so a "30 % storm" hits the same requests on every run. */
function seeded(s: number): () => number {
  let a = s >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class FaultBook {
  private active: Active[] = [];
  private seq = 0;

  constructor(private readonly now: () => number) {}

  add(spec: FaultSpec): number {
    const parsed = faultSchema.parse(spec);
    const from = parsed.start_at ?? this.now();
    const id = ++this.seq;
    this.active.push({
      id,
      spec: parsed,
      from,
      until: parsed.duration_ms === undefined ? Number.POSITIVE_INFINITY : from + parsed.duration_ms,
      random: "seed" in parsed && parsed.seed !== undefined ? seeded(parsed.seed) : () => Number.NaN,
      hits: 0,
      seen: 0,
    });
    return id;
  }

  /** The first active fault that hits this request, if any. */
  decide(path: string): FaultAction | null {
    const t = this.now();
    for (const f of this.active) {
      if (t < f.from || t >= f.until) continue;
      const s = f.spec;
      if (s.kind !== "outage") {
        if (path !== "/v1/messages") continue;
        const r = s.rate ?? 1;
        const n = f.seen++;
        const draw = f.random();
        // Seeded: a random draw per call. Unseeded: call n is hit when it crosses the next multiple of 1/rate.
        const hit = Number.isNaN(draw) ? Math.floor((n + 1) * r) > Math.floor(n * r) : draw < r;
        if (!hit) continue;
      }
      f.hits++;
      if (s.kind === "outage") return s.status === 0 ? { kind: "drop", fault: f.id } : { kind: "error", status: s.status ?? 529, fault: f.id };
      if (s.kind === "errors") return { kind: "error", status: s.status ?? 529, fault: f.id };
      if (s.kind === "timeout") return { kind: "hang", fault: f.id };
      return { kind: "delay", ms: s.latency_ms, fault: f.id };
    }
    return null;
  }

  list(): Array<FaultSpec & { id: number; from: number; until: number | null; hits: number }> {
    return this.active.map((f) => ({ ...f.spec, id: f.id, from: f.from, until: Number.isFinite(f.until) ? f.until : null, hits: f.hits }));
  }

  clear(): void {
    this.active = [];
  }
}
