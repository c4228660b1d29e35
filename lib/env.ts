// The app's configuration, validated once with zod and read lazily so that importing a module never fails
// at build time. Inngest's own variables (INNGEST_DEV, INNGEST_SIGNING_KEY, INNGEST_EVENT_KEY,
// INNGEST_BASE_URL) are read by the Inngest SDK itself; they are listed in .env.example and the README.
import { z } from "zod";

const optionalString = z
  .string()
  .transform((s) => s.trim())
  .pipe(z.string())
  .optional()
  .transform((s) => (s ? s : undefined));

/** An integer setting; empty (as `.env.example` leaves it) means its default. */
const intSetting = (min: number, max: number, fallback: number) =>
  z.preprocess((v) => (typeof v === "string" && v.trim() === "" ? undefined : v), z.coerce.number().int().min(min).max(max).default(fallback));

const EnvSchema = z
  .object({
    SUPABASE_URL: z.url({ message: "SUPABASE_URL must be the project's URL, e.g. https://xyz.supabase.co" }),
    SUPABASE_SECRET_KEY: z.string().min(20, "SUPABASE_SECRET_KEY (service role / secret key) is required"),
    ANTHROPIC_API_KEY: optionalString,
    ANTHROPIC_BASE_URL: optionalString.pipe(z.url().optional()),
    NIGHTSHIFT_MODEL_TIMEOUT_MS: intSetting(1000, 600_000, 120_000),
    // Token-weighted pacing under the models' rate limits (lib/pacing.ts). "off" sends every call straight away
    // (a 429 is then retried by the step, as a plain SDK client would): for comparison in bench:night.
    NIGHTSHIFT_PACING: optionalString.pipe(z.enum(["on", "off"]).optional()).transform((v) => v ?? "on"),
    // "off" sends submitTask's one RPC through supabase-js instead of directly (lib/db/direct-rpc.ts): the "before" of
    // bench:submit-ab; the answer is the same either way.
    NIGHTSHIFT_DIRECT_RPC: optionalString.pipe(z.enum(["on", "off"]).optional()).transform((v) => v ?? "on"),
    // Mode "auto" sends a call through the Message Batches API only while the task's deadline is at least this many
    // seconds away (lib/agents/call-mode.ts); 3600: most batches end within an hour, 86400: every batch does.
    NIGHTSHIFT_BATCH_ROOM_S: intSetting(60, 86_400, 3600),
    // Mode "auto" with a deadline: a batch still running this many seconds before the deadline is cancelled (what it
    // finished is used and charged) and the call runs directly (lib/agents/batch-turn.ts awaitBatchTurn).
    NIGHTSHIFT_DIRECT_ROOM_S: intSetting(10, 86_400, 600),
    // Circuit breakers (docs/failures.md): this many consecutive outage failures open a dependency's breaker; the
    // first cool-down lasts COOLDOWN seconds and doubles on every failed probe, up to MAX_COOLDOWN.
    NIGHTSHIFT_BREAKER_THRESHOLD: intSetting(1, 1000, 5),
    NIGHTSHIFT_BREAKER_COOLDOWN_S: intSetting(1, 86_400, 60),
    NIGHTSHIFT_BREAKER_MAX_COOLDOWN_S: intSetting(1, 86_400, 1800),
    // Retention of bookkeeping that has done its job (lib/retention.ts, docs/retention.md), in days; applied by the
    // outbox-sweeper cron in bounded batches. Results (tasks, steps, artifacts, approvals, the ledger) are never pruned.
    NIGHTSHIFT_RETAIN_OUTBOX_DAYS: intSetting(2, 3650, 7),
    NIGHTSHIFT_RETAIN_WEBHOOK_ATTEMPTS_DAYS: intSetting(1, 3650, 30),
    NIGHTSHIFT_RETAIN_NOTIFICATIONS_DAYS: intSetting(3, 3650, 30),
    // The owner's time zone: the console shows schedule times in it; the morning digest is sent at
    // NIGHTSHIFT_DIGEST_TIME there (an empty night sends a one-line "nothing ran" unless NIGHTSHIFT_DIGEST_EMPTY=false).
    NIGHTSHIFT_TIMEZONE: optionalString
      .pipe(z.string().refine(isTimeZoneName, "NIGHTSHIFT_TIMEZONE must be an IANA time zone such as Europe/Berlin").optional())
      .transform((v) => v ?? "UTC"),
    NIGHTSHIFT_DIGEST_TIME: optionalString
      .pipe(z.string().regex(/^(([01]\d|2[0-3]):[0-5]\d|off)$/, "NIGHTSHIFT_DIGEST_TIME must be HH:MM (24 h), e.g. 07:00, or off").optional())
      .transform((v) => v ?? "07:00"),
    NIGHTSHIFT_DIGEST_EMPTY: optionalString
      .pipe(z.enum(["true", "false"], { message: "NIGHTSHIFT_DIGEST_EMPTY must be true or false" }).optional())
      .transform((v) => v !== "false"),
    // Signs every webhook Nightshift sends (Standard Webhooks, lib/webhooks/); unset → sent unsigned.
    NIGHTSHIFT_WEBHOOK_SECRET: optionalString.pipe(
      z
        .string()
        .refine(isStandardWebhookSecret, {
          message:
            "NIGHTSHIFT_WEBHOOK_SECRET must be a Standard Webhooks secret: whsec_<base64 of 24 to 64 random bytes>. The old plain-string format is no longer accepted; make one with: node -e \"console.log('whsec_' + require('crypto').randomBytes(32).toString('base64'))\"",
        })
        .optional(),
    ),
  })
  .refine((e) => e.ANTHROPIC_API_KEY || e.ANTHROPIC_BASE_URL, {
    message:
      "set ANTHROPIC_API_KEY for the real Claude API, or ANTHROPIC_BASE_URL to the offline double (npm run dev does this)",
    path: ["ANTHROPIC_API_KEY"],
  });

export type Env = z.infer<typeof EnvSchema>;

function isTimeZoneName(tz: string): boolean {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** `whsec_` followed by the base64 of 24 to 64 bytes (the Standard Webhooks secret format). */
export function isStandardWebhookSecret(value: string): boolean {
  const m = /^whsec_([A-Za-z0-9+/]+={0,2})$/.exec(value);
  if (!m) return false;
  const bytes = Buffer.from(m[1]!, "base64").length;
  return bytes >= 24 && bytes <= 64;
}

let cached: Env | undefined;

export function env(): Env {
  if (cached) return cached;
  const parsed = EnvSchema.safeParse(process.env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join(".") || "env"}: ${i.message}`).join("; ");
    throw new Error(`Invalid Nightshift configuration: ${problems}`);
  }
  cached = parsed.data;
  return cached;
}

/** Tests change the environment between suites; production never calls this. */
export function resetEnvCache(): void {
  cached = undefined;
}
