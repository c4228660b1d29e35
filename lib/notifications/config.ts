// The notification channels' configuration, read from environment variables with zod (the same conventions as
// lib/agents/tools/config.ts). `loadNotifyConfig()` takes the variables as a plain object (default: process.env) so
// tests and lib/env.ts can hand over their own.
//
// A channel is enabled only when it is configured. A half-configured channel (a Telegram token without a chat id, an
// email recipient without a Resend key, a malformed URL) does not throw: it is reported in `problems`, and every
// notification records that channel as failed with the reason — a configuration mistake must be visible, and must
// never stop the other channels or the work that caused the notification.
import { z } from "zod";

export const CHANNELS = ["slack", "telegram", "email"] as const;
export type Channel = (typeof CHANNELS)[number];

export interface SlackConfig {
  /** The incoming-webhook URL itself (its path is the credential; its origin is the configurable base). */
  webhookUrl: string;
}

export interface TelegramConfig {
  token: string;
  chatId: string;
  /** Default https://api.telegram.org; messages go to POST {apiBaseUrl}/bot<token>/sendMessage. */
  apiBaseUrl: string;
}

export interface EmailConfig {
  apiKey: string;
  /** Resend's API base (RESEND_BASE_URL, shared with the send_email tool). */
  baseUrl: string;
  from: string;
  to: string[];
}

export interface NotifyConfig {
  /** Base of every link in a message (no trailing slash). */
  publicUrl: string;
  /** Per-request HTTP timeout. */
  timeoutMs: number;
  slack: SlackConfig | null;
  telegram: TelegramConfig | null;
  email: EmailConfig | null;
  /** Channels that are partly configured or malformed, with the reason (never containing a secret). */
  problems: Partial<Record<Channel, string>>;
  /** Values that must never appear in a stored error or a log line (tokens, keys, the Slack webhook path). */
  secrets: string[];
}

export const DEFAULT_PUBLIC_URL = "http://127.0.0.1:3000";
export const DEFAULT_TELEGRAM_API_BASE_URL = "https://api.telegram.org";
export const DEFAULT_RESEND_BASE_URL = "https://api.resend.com";
export const DEFAULT_EMAIL_FROM = "Nightshift <onboarding@resend.dev>";
export const DEFAULT_TIMEOUT_MS = 10_000;

const trimmed = (v: unknown): string | undefined => {
  if (v === undefined || v === null) return undefined;
  const s = String(v).trim();
  return s ? s : undefined;
};
const stripSlash = (u: string) => u.replace(/\/+$/, "");
const httpUrl = z.url({ protocol: /^https?$/ });
const emailList = z.array(z.email()).min(1).max(10);

/**
 * On Vercel without NIGHTSHIFT_PUBLIC_URL: the production domain in production (VERCEL_PROJECT_PRODUCTION_URL), else
 * this deployment's branch or own URL (VERCEL_BRANCH_URL, VERCEL_URL). Vercel gives them without a scheme.
 */
function vercelUrl(get: (name: string) => string | undefined): string | undefined {
  const host =
    (get("VERCEL_ENV") === "production" ? get("VERCEL_PROJECT_PRODUCTION_URL") : undefined) ?? get("VERCEL_BRANCH_URL") ?? get("VERCEL_URL");
  if (!host) return undefined;
  return /^https?:\/\//.test(host) ? host : `https://${host}`;
}

/** Every channel's state, including what is only partly configured. Never throws. */
export function loadNotifyConfig(vars: Record<string, string | number | undefined> = process.env): NotifyConfig {
  const get = (name: string) => trimmed(vars[name]);
  const problems: NotifyConfig["problems"] = {};
  const secrets: string[] = [];

  let publicUrl = DEFAULT_PUBLIC_URL;
  const pub = get("NIGHTSHIFT_PUBLIC_URL") ?? vercelUrl(get);
  if (pub) {
    // A bad public URL must not silence the notification: the default stands in, and the message still goes out.
    if (httpUrl.safeParse(pub).success) publicUrl = stripSlash(pub);
    else console.warn("[notifications] NIGHTSHIFT_PUBLIC_URL is not an http(s) URL; links use " + DEFAULT_PUBLIC_URL);
  }

  const timeout = Number(get("NIGHTSHIFT_NOTIFY_TIMEOUT_MS") ?? DEFAULT_TIMEOUT_MS);
  const timeoutMs = Number.isInteger(timeout) && timeout >= 100 && timeout <= 60_000 ? timeout : DEFAULT_TIMEOUT_MS;

  let slack: SlackConfig | null = null;
  const hook = get("SLACK_WEBHOOK_URL");
  if (hook) {
    secrets.push(hook);
    try {
      const u = new URL(hook);
      if (u.pathname.length > 1) secrets.push(u.pathname, u.pathname.slice(1));
    } catch {
      // reported below
    }
    if (httpUrl.safeParse(hook).success) slack = { webhookUrl: hook };
    else problems.slack = "SLACK_WEBHOOK_URL is not an http(s) URL";
  }

  let telegram: TelegramConfig | null = null;
  const token = get("TELEGRAM_BOT_TOKEN");
  const chatId = get("TELEGRAM_CHAT_ID");
  const tgBase = get("TELEGRAM_API_BASE_URL") ?? DEFAULT_TELEGRAM_API_BASE_URL;
  if (token) secrets.push(token);
  if (token || chatId) {
    if (!token) problems.telegram = "TELEGRAM_CHAT_ID is set but TELEGRAM_BOT_TOKEN is not";
    else if (!chatId) problems.telegram = "TELEGRAM_BOT_TOKEN is set but TELEGRAM_CHAT_ID is not";
    else if (/[\s/?#]/.test(token)) problems.telegram = "TELEGRAM_BOT_TOKEN has characters a bot token cannot have";
    else if (!httpUrl.safeParse(tgBase).success) problems.telegram = "TELEGRAM_API_BASE_URL is not an http(s) URL";
    else telegram = { token, chatId, apiBaseUrl: stripSlash(tgBase) };
  }

  let email: EmailConfig | null = null;
  const to = get("NOTIFY_EMAIL_TO");
  const apiKey = get("RESEND_API_KEY");
  if (apiKey) secrets.push(apiKey);
  if (to) {
    const list = emailList.safeParse(to.split(",").map((s) => s.trim()).filter(Boolean));
    const base = get("RESEND_BASE_URL") ?? DEFAULT_RESEND_BASE_URL;
    if (!list.success) problems.email = "NOTIFY_EMAIL_TO must be 1 to 10 comma-separated email addresses";
    else if (!apiKey) problems.email = "NOTIFY_EMAIL_TO is set but RESEND_API_KEY is not";
    else if (!httpUrl.safeParse(base).success) problems.email = "RESEND_BASE_URL is not an http(s) URL";
    else email = { apiKey, baseUrl: stripSlash(base), from: get("NIGHTSHIFT_EMAIL_FROM") ?? DEFAULT_EMAIL_FROM, to: list.data };
  }

  return { publicUrl, timeoutMs, slack, telegram, email, problems, secrets };
}

/** The channels that will be tried, in a fixed order. */
export function enabledChannels(config: NotifyConfig): Channel[] {
  return CHANNELS.filter((c) => config[c] !== null);
}
