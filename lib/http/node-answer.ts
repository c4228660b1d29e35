// An answer written on the Node HTTP server itself, before Next sees the request (lib/http/forbidden-methods.ts,
// body-deadline.ts, client-errors.ts): the API's JSON error shape under /api, plain text for the console's pages,
// with the security headers every response carries, never cached.
import { API_CSP, commonSecurityHeaders } from "./security-headers";

/** Is this request URL (path, maybe a query) under /api? */
export function isApiUrl(url: string): boolean {
  return /^\/api(\/|\?|$)/.test(url);
}

/** Body and headers of an error answered before Next: `{ error: { code, message } }` when `json`, else the message. */
export function nodeErrorAnswer(
  json: boolean,
  code: string,
  message: string,
  extraHeaders: Record<string, string> = {},
): { body: string; headers: Record<string, string> } {
  const body = json ? JSON.stringify({ error: { code, message } }) : message;
  return {
    body,
    headers: {
      ...commonSecurityHeaders(),
      ...(json ? { "Content-Security-Policy": API_CSP } : {}),
      "Content-Type": json ? "application/json" : "text/plain; charset=utf-8",
      "Content-Length": String(Buffer.byteLength(body)),
      "Cache-Control": "no-store",
      ...extraHeaders,
    },
  };
}
