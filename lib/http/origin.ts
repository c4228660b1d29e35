// The origin the client used, for absolute URLs in responses. Behind a proxy (Vercel) the forwarded headers
// carry it; `next start` reports its own bind address in req.url, so the Host header is preferred.
export function publicOrigin(req: Request): string {
  const url = new URL(req.url);
  const host = req.headers.get("x-forwarded-host") ?? req.headers.get("host");
  const proto = req.headers.get("x-forwarded-proto") ?? url.protocol.replace(/:$/, "");
  if (host && /^[A-Za-z0-9.-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$/.test(host) && /^https?$/.test(proto)) {
    return `${proto}://${host}`;
  }
  return url.origin;
}
