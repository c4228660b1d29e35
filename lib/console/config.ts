// The console's own configuration: the operator password and the key that signs session cookies. Validated with
// zod and read lazily (like lib/env.ts), so a build or an API-only deployment never needs them; without them the
// console refuses every sign-in and says which variable is missing.
import { z } from "zod";

const ConsoleEnv = z.object({
  NIGHTSHIFT_OPERATOR_PASSWORD: z
    .string({ error: "NIGHTSHIFT_OPERATOR_PASSWORD is not set: the console has no password to sign in with" })
    .min(8, "NIGHTSHIFT_OPERATOR_PASSWORD must be at least 8 characters"),
  NIGHTSHIFT_SESSION_SECRET: z
    .string({ error: "NIGHTSHIFT_SESSION_SECRET is not set: sessions cannot be signed" })
    .min(32, "NIGHTSHIFT_SESSION_SECRET must be at least 32 characters (e.g. `openssl rand -base64 32`)"),
  NIGHTSHIFT_SESSION_TTL_HOURS: z.coerce.number().int().min(1).max(24 * 30).default(24),
});

export interface ConsoleConfig {
  operatorPassword: string;
  sessionSecret: string;
  sessionTtlMs: number;
}

export class ConsoleConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConsoleConfigError";
  }
}

let cached: { key: string; config: ConsoleConfig } | undefined;

/** The validated configuration; throws ConsoleConfigError naming the variable when it is missing or too weak. */
export function consoleConfig(source: Record<string, string | undefined> = process.env): ConsoleConfig {
  const key = `${source.NIGHTSHIFT_OPERATOR_PASSWORD}\u0000${source.NIGHTSHIFT_SESSION_SECRET}\u0000${source.NIGHTSHIFT_SESSION_TTL_HOURS}`;
  if (cached?.key === key) return cached.config;
  const parsed = ConsoleEnv.safeParse({
    NIGHTSHIFT_OPERATOR_PASSWORD: source.NIGHTSHIFT_OPERATOR_PASSWORD || undefined,
    NIGHTSHIFT_SESSION_SECRET: source.NIGHTSHIFT_SESSION_SECRET || undefined,
    NIGHTSHIFT_SESSION_TTL_HOURS: source.NIGHTSHIFT_SESSION_TTL_HOURS || undefined,
  });
  if (!parsed.success) {
    throw new ConsoleConfigError(`Console not configured: ${parsed.error.issues.map((i) => i.message).join("; ")}`);
  }
  const config: ConsoleConfig = {
    operatorPassword: parsed.data.NIGHTSHIFT_OPERATOR_PASSWORD,
    sessionSecret: parsed.data.NIGHTSHIFT_SESSION_SECRET,
    sessionTtlMs: parsed.data.NIGHTSHIFT_SESSION_TTL_HOURS * 3_600_000,
  };
  cached = { key, config };
  return config;
}

/** The configuration, or null when the console is not configured (pages then show the reason on /login). */
export function consoleConfigOrNull(): ConsoleConfig | null {
  try {
    return consoleConfig();
  } catch (e) {
    if (e instanceof ConsoleConfigError) return null;
    throw e;
  }
}
