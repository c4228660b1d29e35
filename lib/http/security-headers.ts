// Security headers (issue 11, finding 8; OWASP HTTP Headers and CSP cheat sheets). The console's pages get a
// Content-Security-Policy with a fresh nonce per request: Next reads the nonce from the request's CSP header and
// puts it on the inline scripts it renders (which is why every console page is dynamic). The API's JSON answers
// get a policy that allows nothing. Everything gets frame-ancestors 'none' (no clickjacking), nosniff, a strict
// referrer policy, and HSTS in production.

export function consoleCsp(nonce: string, dev = process.env.NODE_ENV === "development"): string {
  return [
    "default-src 'self'",
    // 'strict-dynamic': scripts loaded by a nonced script are trusted; 'self' is the fallback for old browsers.
    // Next's dev server (React refresh) needs eval; production never gets it.
    `script-src 'self' 'nonce-${nonce}' 'strict-dynamic'${dev ? " 'unsafe-eval'" : ""}`,
    // React renders style attributes; styles cannot run code, so inline styles stay allowed.
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:",
    "font-src 'self' data:",
    `connect-src 'self'${dev ? " ws: wss:" : ""}`,
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join("; ");
}

export const API_CSP = "default-src 'none'; frame-ancestors 'none'";

/**
 * The hot API routes proxy.ts's matcher leaves out (keep the two lists equal; tests/integration/console/proxy.test.ts
 * checks): Next's middleware adapter cost 11–14 % of such a request's CPU (docs/benchmarks.md) only to set the CSP
 * above and refuse what these exact paths cannot carry. Their contract is kept elsewhere: the CSP by next.config.ts's
 * headers(), unknown methods by lib/http/forbidden-methods.ts, the routes' own methods by lib/http/methods.ts; an exact
 * path holds no percent-escape, malformed or not.
 */
export const PROXY_FREE_API_PATHS = ["/api/tasks", "/api/health"] as const;

/** Headers every response carries (pages and API). */
export function commonSecurityHeaders(production = process.env.NODE_ENV !== "development"): Record<string, string> {
  return {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
    // Browsers ignore HSTS over plain http, so a local `next start` is unaffected; no preload (the operator's
    // choice for their domain).
    ...(production ? { "Strict-Transport-Security": "max-age=63072000; includeSubDomains" } : {}),
  };
}
