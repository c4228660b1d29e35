// The wire format of the tasks API (snake_case, like the mission text and the Anthropic API).
import { z } from "zod";

export const MAX_PROMPT_CHARS = 100_000;

/** now: direct calls; batch: every call through the Message Batches API (half price, up to 24 h); auto: each call
 * through a batch while the task's deadline leaves room for one, directly otherwise (lib/agents/call-mode.ts). */
export const TASK_MODES = ["now", "batch", "auto"] as const;
export type TaskMode = (typeof TASK_MODES)[number];

/** Where a task's result is POSTed. No user:password@: the delivery refuses such URLs (lib/net/guarded-fetch.ts), so
 * accepting one would only fail later, with the credentials stored and shown meanwhile. */
export const CallbackUrl = z
  .url({ protocol: /^https?$/, message: "callback_url must be an http(s) URL" })
  .max(2048)
  .refine((u) => {
    const url = URL.parse(u);
    return !url || (!url.username && !url.password);
  }, "callback_url must not carry credentials (user:password@host)");

const DEADLINE_MIN = Date.UTC(1970, 0, 1);
const DEADLINE_END = Date.UTC(10000, 0, 1);

export const CreateTaskBody = z.strictObject({
  agent: z.string({ error: "agent is required (research, content or outreach)" }).regex(/^[a-z][a-z0-9_-]{1,39}$/, {
    message: "agent must be an agent id such as research, content or outreach",
  }),
  prompt: z
    .string({ error: "prompt is required and must be a string" })
    .trim()
    .min(1, "prompt must not be empty")
    .max(MAX_PROMPT_CHARS, `prompt must be at most ${MAX_PROMPT_CHARS} characters`),
  input: z.record(z.string(), z.unknown()).optional(),
  priority: z.number().int().min(-100).max(100).optional(),
  /** Omitted: the agent's default mode. */
  mode: z.enum(TASK_MODES, { error: "mode must be now, batch or auto" }).optional(),
  /** When the result is needed (ISO 8601 with an offset); mode auto uses a batch only while it leaves room. */
  deadline: z.iso
    .datetime({ offset: true, message: "deadline must be an ISO 8601 date-time with a time zone, e.g. 2026-11-30T07:00:00Z" })
    // The ISO check passes year 0000 and offsets that carry 9999-12-31 into year 10000; Postgres stores neither.
    .refine((s) => {
      const t = Date.parse(s);
      return t >= DEADLINE_MIN && t < DEADLINE_END;
    }, "deadline must fall between 1970-01-01 and 9999-12-31 (UTC)")
    .optional(),
  require_approval: z.boolean().optional(),
  callback_url: CallbackUrl.optional(),
  /** A configured peer deployment (row of `peers`) that receives the result when the task completes. */
  next_hop: z
    .string({ error: "next_hop must be the name of a configured peer" })
    .regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, "next_hop must be the name of a configured peer")
    .optional(),
});
export type CreateTaskBody = z.infer<typeof CreateTaskBody>;

export const IdempotencyKey = z
  .string()
  .min(1)
  .max(255, "Idempotency-Key must be at most 255 characters")
  .regex(/^[\x21-\x7e]+$/, "Idempotency-Key must be printable ASCII without spaces");

export const TASK_STATUSES = [
  "queued",
  "running",
  "waiting_budget",
  "waiting_rate_limit",
  "waiting_approval",
  "waiting_dependency",
  "completed",
  "failed",
  "stopped",
  "rejected",
  "cancelled",
] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];
export const TERMINAL_STATUSES: readonly TaskStatus[] = ["completed", "failed", "stopped", "rejected", "cancelled"];

export const ListTasksQuery = z.strictObject({
  status: z.enum(TASK_STATUSES).optional(),
  agent: z.string().max(40).optional(),
  limit: z.coerce.number().int().min(1).max(100).default(20),
  cursor: z.string().max(200).optional(),
});

export const TaskId = z.uuid();
