// Secrets never reach a stored error or a log line. The Telegram bot token travels in the URL path
// (/bot<token>/sendMessage) and the Slack webhook's path is its credential, so any error that quotes a URL — a
// network error, a proxy's answer, a provider echoing the request — could carry one. Every message that leaves this
// module's callers goes through `redact` first.
export const REDACTED = "[redacted]";

// Shapes worth masking even when the exact value is unknown (a token of another bot, an old key).
const PATTERNS: [RegExp, string][] = [
  [/bot\d{3,}:[A-Za-z0-9_-]{10,}/g, `bot${REDACTED}`],
  [/\d{6,}:[A-Za-z0-9_-]{30,}/g, REDACTED],
  [/(hooks\.slack(?:-gov)?\.com\/(?:services|workflows|triggers)\/)[^\s"'<>]+/gi, `$1${REDACTED}`],
  [/\bre_[A-Za-z0-9_]{8,}/g, REDACTED],
  [/(authorization:?\s*bearer\s+)[^\s"',]+/gi, `$1${REDACTED}`],
];

/** `text` with every secret (and its URL-encoded form) and every token-shaped string replaced. */
export function redact(text: string, secrets: readonly string[] = []): string {
  let out = text;
  const variants = new Set<string>();
  for (const s of secrets) {
    if (!s || s.length < 6) continue;
    variants.add(s);
    variants.add(encodeURIComponent(s));
    variants.add(encodeURI(s));
  }
  // Longest first, so a secret that contains another is masked whole.
  for (const v of [...variants].sort((a, b) => b.length - a.length)) out = out.split(v).join(REDACTED);
  for (const [re, by] of PATTERNS) out = out.replace(re, by);
  return out;
}

/** An error's message with its causes (undici hides the reason for "fetch failed" in `cause`), redacted. */
export function describeError(err: unknown, secrets: readonly string[] = []): string {
  const parts: string[] = [];
  let e: unknown = err;
  for (let depth = 0; e && depth < 4; depth++) {
    if (e instanceof Error) {
      const code = (e as { code?: unknown }).code;
      parts.push(typeof code === "string" && !e.message.includes(code) ? `${e.message} (${code})` : e.message);
      e = e.cause;
    } else {
      parts.push(String(e));
      break;
    }
  }
  return redact(parts.filter(Boolean).join(": ") || "unknown error", secrets).slice(0, 1000);
}
