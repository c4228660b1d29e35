// The tools' configuration, read from environment variables with zod. `loadToolConfig()` takes the variables as a
// plain object (default: process.env), so lib/env.ts can hand over its validated copy, and tests can pass their
// own. Things no environment variable can carry (an injected DNS resolver, a connect observer) are overrides.
import { z } from "zod";
import type { ConnectObserver, Resolver } from "./web-fetch";

export interface WebFetchConfig {
  /**
   * Hosts and networks that bypass the private-address check: exact host names (`intranet.example`), wildcard
   * suffixes (`*.corp.example`), addresses (`10.1.2.3`, `::1`) and CIDRs (`10.0.0.0/8`, `fd00::/8`).
   */
  allow: string[];
  /** Response body cap (decoded bytes); reading stops beyond it and the result says `truncated: true`. */
  maxBytes: number;
  /** Total time for the whole fetch, redirects and body included. */
  timeoutMs: number;
  /** Cap on the text handed back to the model. */
  maxChars: number;
  maxRedirects: number;
  userAgent: string;
  /** DNS resolution (all addresses of a name). Default: the OS resolver, as a connection would use it. */
  resolve?: Resolver;
  /** Told the exact address right before every connection (logging; tests assert on it). */
  onConnect?: ConnectObserver;
}

export interface EmailConfig {
  /** Without a key, send_email is a dry run: it records what it would have sent and says so. */
  apiKey?: string;
  /** Resend's API base; tests point it at a capture server. */
  baseUrl: string;
  /** The sender (the model does not choose it). */
  from: string;
  maxRecipients: number;
  /** Recipients all send_email calls together may reach in any 24 hours (0: none); counted in Postgres. */
  dailyMax: number;
  timeoutMs: number;
}

export interface ToolConfig {
  webFetch: WebFetchConfig;
  email: EmailConfig;
  artifacts: { maxBytes: number };
  sideEffects: {
    /** How long a claim on a side effect stays exclusive; must exceed the longest effect (see the migration). */
    leaseSeconds: number;
  };
}

const optional = z
  .string()
  .optional()
  .transform((s) => (s && s.trim() ? s.trim() : undefined));
const int = (min: number, max: number, dflt: number) => z.coerce.number().int().min(min).max(max).default(dflt);

const ToolEnvSchema = z.object({
  RESEND_API_KEY: optional,
  RESEND_BASE_URL: optional.pipe(z.url().optional()).transform((u) => (u ?? "https://api.resend.com").replace(/\/+$/, "")),
  NIGHTSHIFT_EMAIL_FROM: optional.transform((s) => s ?? "Nightshift <onboarding@resend.dev>"),
  NIGHTSHIFT_EMAIL_MAX_RECIPIENTS: int(1, 10, 10), // can only lower send_email's schema cap of 10
  NIGHTSHIFT_EMAIL_DAILY_MAX: int(0, 1_000_000, 100),
  NIGHTSHIFT_FETCH_ALLOW: optional.transform((s) =>
    (s ?? "")
      .split(",")
      .map((x) => x.trim())
      .filter(Boolean),
  ),
  NIGHTSHIFT_FETCH_MAX_BYTES: int(1024, 50 * 1024 * 1024, 2 * 1024 * 1024),
  NIGHTSHIFT_FETCH_TIMEOUT_MS: int(100, 300_000, 15_000),
  NIGHTSHIFT_FETCH_MAX_CHARS: int(500, 200_000, 20_000),
  NIGHTSHIFT_ARTIFACT_MAX_BYTES: int(1, 20 * 1024 * 1024, 5 * 1024 * 1024),
  NIGHTSHIFT_SIDE_EFFECT_LEASE_SECONDS: int(5, 86_400, 120),
});

export type ToolEnv = z.input<typeof ToolEnvSchema>;

export interface ToolConfigOverrides {
  webFetch?: Partial<WebFetchConfig>;
  email?: Partial<EmailConfig>;
  artifacts?: Partial<ToolConfig["artifacts"]>;
  sideEffects?: Partial<ToolConfig["sideEffects"]>;
}

export function loadToolConfig(
  vars: Record<string, string | number | undefined> = process.env,
  overrides: ToolConfigOverrides = {},
): ToolConfig {
  const parsed = ToolEnvSchema.safeParse(vars);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ");
    throw new Error(`Invalid Nightshift tool configuration: ${problems}`);
  }
  const e = parsed.data;
  return {
    webFetch: {
      allow: e.NIGHTSHIFT_FETCH_ALLOW,
      maxBytes: e.NIGHTSHIFT_FETCH_MAX_BYTES,
      timeoutMs: e.NIGHTSHIFT_FETCH_TIMEOUT_MS,
      maxChars: e.NIGHTSHIFT_FETCH_MAX_CHARS,
      maxRedirects: 5,
      userAgent: "NightshiftBot/0.1 (web_fetch tool of a Nightshift agent)",
      ...overrides.webFetch,
    },
    email: {
      apiKey: e.RESEND_API_KEY,
      baseUrl: e.RESEND_BASE_URL,
      from: e.NIGHTSHIFT_EMAIL_FROM,
      maxRecipients: e.NIGHTSHIFT_EMAIL_MAX_RECIPIENTS,
      dailyMax: e.NIGHTSHIFT_EMAIL_DAILY_MAX,
      timeoutMs: 15_000,
      ...overrides.email,
    },
    artifacts: { maxBytes: e.NIGHTSHIFT_ARTIFACT_MAX_BYTES, ...overrides.artifacts },
    sideEffects: { leaseSeconds: e.NIGHTSHIFT_SIDE_EFFECT_LEASE_SECONDS, ...overrides.sideEffects },
  };
}
