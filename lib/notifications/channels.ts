// The three senders, plain HTTP against configurable bases (tests point them at capture servers). A sender never
// throws: it answers with an outcome the delivery step turns into "sent", "retry" or "failed".
//
//   transient  network error, timeout, 408, 425, 429, 5xx (and Resend's concurrent_idempotent_requests) — retried;
//              `retryAfterMs` carries Slack's/Resend's Retry-After header or Telegram's parameters.retry_after
//   permanent  any other 4xx, a redirect, an answer that says it refused — recorded failed, not retried
//
// Every error text is redacted (lib/notifications/redact.ts) before it is returned.
import type { EmailConfig, NotifyConfig, SlackConfig, TelegramConfig } from "./config";
import { emailMessage, slackMessage, telegramMessage, type NotificationContent } from "./format";
import { describeError, redact } from "./redact";

export type SendOutcome =
  | { ok: true; status: number; providerId: string | null }
  | { ok: false; transient: boolean; status: number | null; error: string; retryAfterMs?: number };

export interface SendContext {
  /** The absolute link the message carries. */
  url: string;
  timeoutMs: number;
  secrets: readonly string[];
  /** Resend's Idempotency-Key (notification/<id>/email). */
  idempotencyKey: string;
}

const USER_AGENT = "nightshift-notifications";

interface Answer {
  status: number;
  headers: Headers;
  text: string;
  json: unknown;
}

async function post(
  url: string,
  body: unknown,
  ctx: SendContext,
  headers: Record<string, string> = {},
): Promise<Answer | { error: string }> {
  let res: Response;
  try {
    res = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", "user-agent": USER_AGENT, ...headers },
      body: JSON.stringify(body),
      redirect: "manual",
      signal: AbortSignal.timeout(ctx.timeoutMs),
    });
  } catch (err) {
    return { error: describeError(err, ctx.secrets) };
  }
  const text = await res.text().catch(() => "");
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

function isTransientStatus(status: number): boolean {
  return status === 408 || status === 425 || status === 429 || status >= 500;
}

/** Retry-After as seconds or an HTTP date, in milliseconds; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | null | undefined, now = Date.now()): number | undefined {
  if (!value) return undefined;
  const s = Number(value.trim());
  if (Number.isFinite(s)) return s >= 0 ? s * 1000 : undefined;
  const at = Date.parse(value);
  return Number.isFinite(at) ? Math.max(0, at - now) : undefined;
}

function failure(
  name: string,
  a: Answer,
  detail: string,
  ctx: SendContext,
  extra: { transient?: boolean; retryAfterMs?: number } = {},
): SendOutcome {
  const transient = extra.transient ?? isTransientStatus(a.status);
  const retryAfterMs = extra.retryAfterMs ?? parseRetryAfter(a.headers.get("retry-after"));
  return {
    ok: false,
    transient,
    status: a.status,
    error: redact(`${name} answered ${a.status}${detail ? `: ${detail.trim().slice(0, 300)}` : ""}`, ctx.secrets),
    ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
  };
}

const unreachable = (name: string, error: string): SendOutcome => ({
  ok: false,
  transient: true,
  status: null,
  error: `${name} unreachable: ${error}`,
});

/** Slack incoming webhook: 200 "ok"; errors are short codes in the body (invalid_payload, no_service, ...). */
export async function sendSlack(cfg: SlackConfig, n: NotificationContent, ctx: SendContext): Promise<SendOutcome> {
  const a = await post(cfg.webhookUrl, slackMessage(n, ctx.url), ctx);
  if ("error" in a) return unreachable("Slack", a.error);
  if (a.status >= 200 && a.status < 300) return { ok: true, status: a.status, providerId: null };
  return failure("Slack", a, a.text, ctx);
}

/** Telegram Bot API sendMessage: { ok, result: { message_id } } or { ok: false, error_code, description, parameters }. */
export async function sendTelegram(cfg: TelegramConfig, n: NotificationContent, ctx: SendContext): Promise<SendOutcome> {
  const url = `${cfg.apiBaseUrl}/bot${cfg.token}/sendMessage`;
  const a = await post(url, telegramMessage(n, ctx.url, cfg.chatId), ctx);
  if ("error" in a) return unreachable("Telegram", a.error);
  const body = (a.json ?? {}) as {
    ok?: unknown;
    result?: { message_id?: unknown };
    description?: unknown;
    parameters?: { retry_after?: unknown };
  };
  if (a.status >= 200 && a.status < 300 && body.ok !== false) {
    const id = body.result?.message_id;
    return { ok: true, status: a.status, providerId: id === undefined || id === null ? null : String(id) };
  }
  const retryAfter = Number(body.parameters?.retry_after);
  return failure("Telegram", a, typeof body.description === "string" ? body.description : a.text, ctx, {
    ...(a.status >= 200 && a.status < 300 ? { transient: false } : {}),
    ...(Number.isFinite(retryAfter) && retryAfter >= 0 ? { retryAfterMs: retryAfter * 1000 } : {}),
  });
}

/** Resend POST /emails: { id } on success; { name, message } on error. */
export async function sendEmail(cfg: EmailConfig, n: NotificationContent, ctx: SendContext): Promise<SendOutcome> {
  const a = await post(`${cfg.baseUrl}/emails`, emailMessage(n, ctx.url, cfg.from, cfg.to), ctx, {
    authorization: `Bearer ${cfg.apiKey}`,
    "idempotency-key": ctx.idempotencyKey,
  });
  if ("error" in a) return unreachable("Resend", a.error);
  const body = (a.json ?? {}) as { id?: unknown; name?: unknown; message?: unknown };
  if (a.status >= 200 && a.status < 300) {
    return { ok: true, status: a.status, providerId: typeof body.id === "string" ? body.id : null };
  }
  const detail = `${typeof body.name === "string" ? `${body.name} ` : ""}${typeof body.message === "string" ? body.message : a.text}`;
  return failure("Resend", a, detail, ctx, body.name === "concurrent_idempotent_requests" ? { transient: true } : {});
}

export function sendThrough(
  channel: "slack" | "telegram" | "email",
  config: NotifyConfig,
  n: NotificationContent,
  ctx: SendContext,
): Promise<SendOutcome> | null {
  switch (channel) {
    case "slack":
      return config.slack ? sendSlack(config.slack, n, ctx) : null;
    case "telegram":
      return config.telegram ? sendTelegram(config.telegram, n, ctx) : null;
    case "email":
      return config.email ? sendEmail(config.email, n, ctx) : null;
  }
}
