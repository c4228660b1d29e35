// Shapes of what crosses the wire between the SDK and the engine, validated with zod where they arrive.
// Checked against inngest 4.24.0 (InngestFunction.getConfig, InngestCommHandler.registerBody, engine ops).
import { z } from "zod";

const eventTrigger = z.strictObject({ event: z.string().min(1), expression: z.string().optional() });
const cronTrigger = z.strictObject({ cron: z.string().min(1), jitter: z.string().optional() });

const concurrencyOption = z.strictObject({
  limit: z.number().int().min(0),
  key: z.string().optional(),
  scope: z.enum(["fn", "env", "account"]).optional(),
});

/**
 * A function as the SDK registers it. Loose on purpose: unknown or unsupported options are reported by
 * `unsupportedOptions()` with a message naming the function and the option, instead of a zod dump.
 */
export const functionConfigSchema = z.looseObject({
  id: z.string().min(1),
  name: z.string().optional(),
  triggers: z.array(z.union([eventTrigger, cronTrigger])).default([]),
  steps: z.record(
    z.string(),
    z.looseObject({
      id: z.string(),
      name: z.string().optional(),
      runtime: z.looseObject({ type: z.string(), url: z.string().url() }),
      retries: z.looseObject({ attempts: z.number().int().min(0).max(20).optional() }).optional(),
    }),
  ),
  concurrency: z.union([z.number().int().min(0), concurrencyOption, z.array(concurrencyOption).min(1).max(2)]).optional(),
  cancel: z
    .array(z.strictObject({ event: z.string().min(1), if: z.string().optional(), timeout: z.string().optional() }))
    .optional(),
  timeouts: z.strictObject({ start: z.string().optional(), finish: z.string().optional() }).optional(),
});
export type FunctionConfig = z.infer<typeof functionConfigSchema>;

export const registerSchema = z.looseObject({
  url: z.string().url(),
  appName: z.string().min(1),
  functions: z.array(z.unknown()).default([]),
  framework: z.string().optional(),
  sdk: z.string().optional(),
  deployType: z.string().optional(),
});

/** Options the engine implements; anything else present on a function fails the sync. */
const SUPPORTED_KEYS = new Set(["id", "name", "triggers", "steps", "concurrency", "cancel", "timeouts"]);

export function unsupportedOptions(raw: Record<string, unknown>): string[] {
  const out: string[] = [];
  for (const [k, v] of Object.entries(raw)) {
    if (v === undefined || v === null) continue;
    if (!SUPPORTED_KEYS.has(k)) out.push(k);
  }
  return out;
}

export const eventSchema = z.looseObject({
  name: z.string().min(1),
  data: z.record(z.string(), z.unknown()).nullish(),
  id: z.string().min(1).nullish(),
  ts: z.number().nullish(),
  v: z.string().nullish(),
  user: z.unknown().optional(),
});
export type IncomingEvent = z.infer<typeof eventSchema>;

/** The event object as functions and CEL expressions see it. */
export interface EngineEvent {
  id: string;
  name: string;
  data: Record<string, unknown>;
  ts: number;
  v?: string;
  user?: unknown;
  [k: string]: unknown;
}

export const opSchema = z.looseObject({
  id: z.string().min(1),
  op: z.string().min(1),
  name: z.string().optional(),
  displayName: z.string().optional(),
  opts: z.record(z.string(), z.unknown()).nullish(),
  data: z.unknown().optional(),
  error: z.unknown().optional(),
  userland: z.looseObject({ id: z.string().optional() }).optional(),
});
export type Op = z.infer<typeof opSchema>;
export const opsSchema = z.array(opSchema);

/** The body of POST /v1/checkpoint/{runId}/async (inngest 4.24 api/api.js, InngestApi.checkpointStepsAsync). */
export const checkpointBodySchema = z.looseObject({
  run_id: z.string().min(1),
  fn_id: z.string().min(1),
  qi_id: z.string().min(1),
  request_id: z.string().nullish(),
  generation_id: z.number().nullish(),
  request_started_at: z.number().nullish(),
  steps: opsSchema,
  ts: z.number().nullish(),
});
export type CheckpointBody = z.infer<typeof checkpointBodySchema>;

// The same rules as checkpointBodySchema, written out for the checkpoint's hot path (once per step): a body that
// passes here is one the schema accepts, and for a JSON value the schema's output equals it, so it is used as is;
// anything else goes to the schema, which rejects it with its own message (and is still the judge of what is valid).
// tests/unit/engine-checkpoint-body.test.ts checks both against each other on generated bodies, valid and not.
const isObj = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const str1 = (v: unknown) => typeof v === "string" && v.length >= 1;
const optStr = (v: unknown) => v === undefined || typeof v === "string";
const nullishStr = (v: unknown) => v === undefined || v === null || typeof v === "string";
// z.number() refuses NaN and ±Infinity (JSON.parse gives Infinity for 1e999).
const nullishNum = (v: unknown) => v === undefined || v === null || (typeof v === "number" && Number.isFinite(v));

function isOp(v: unknown): boolean {
  if (!isObj(v)) return false;
  const u = v["userland"];
  const opts = v["opts"];
  return (
    str1(v["id"]) &&
    str1(v["op"]) &&
    optStr(v["name"]) &&
    optStr(v["displayName"]) &&
    // z.record wants a plain object: every non-array object JSON.parse makes is one.
    (opts === undefined || opts === null || isObj(opts)) &&
    (u === undefined || (isObj(u) && optStr(u["id"])))
  );
}

/** Accepts exactly what checkpointBodySchema accepts, for values made by JSON.parse. */
export function isCheckpointBody(v: unknown): v is CheckpointBody {
  if (!isObj(v)) return false;
  const steps = v["steps"];
  if (!Array.isArray(steps)) return false;
  for (const op of steps) if (!isOp(op)) return false;
  return (
    str1(v["run_id"]) &&
    str1(v["fn_id"]) &&
    str1(v["qi_id"]) &&
    nullishStr(v["request_id"]) &&
    nullishNum(v["generation_id"]) &&
    nullishNum(v["request_started_at"]) &&
    nullishNum(v["ts"])
  );
}

/** checkpointBodySchema.safeParse for a JSON.parse'd body, the common (valid) case without zod. */
export function parseCheckpointBody(raw: unknown): ReturnType<typeof checkpointBodySchema.safeParse> {
  if (isCheckpointBody(raw)) return { success: true, data: raw };
  return checkpointBodySchema.safeParse(raw);
}

/** A memoized step result as the SDK expects it in `steps`. */
export type MemoValue = { data: unknown } | { error: unknown };

export const INTERNAL = {
  failed: "inngest/function.failed",
  finished: "inngest/function.finished",
  cancelled: "inngest/function.cancelled",
  invoked: "inngest/function.invoked",
  cron: "inngest/scheduled.timer",
} as const;

/** Default retries when a function does not set `retries` (Inngest: 4 retries after the first attempt). */
export const DEFAULT_RETRIES = 4;
