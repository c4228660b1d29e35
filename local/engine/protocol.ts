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
