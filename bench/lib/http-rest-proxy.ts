// The `/rest/v1` proxy as it was until session 7 (a Node http server re-issuing each request to PostgREST's socket
// through a keep-alive agent), kept for bench:submit-ab's before/after against local/db/rest-proxy.ts (which passes
// bytes through and rewrites only the request line). Not used by the app, the dev stack or the tests.
import http from "node:http";
import type { AddressInfo } from "node:net";

const PREFIX = "/rest/v1";
// Hop-by-hop headers are per connection and must not be forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer"]);

export async function startHttpRestProxy(socketPath: string): Promise<{ url: string; close(): Promise<void> }> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const proxy = http.createServer((req, res) => forward(req, res, socketPath, agent));
  proxy.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", () => resolve()));
  return {
    url: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`,
    async close() {
      proxy.closeAllConnections();
      await new Promise<void>((resolve) => proxy.close(() => resolve()));
      agent.destroy();
    },
  };
}

function forward(req: http.IncomingMessage, res: http.ServerResponse, socketPath: string, agent: http.Agent) {
  const url = req.url ?? "/";
  if (url !== PREFIX && !url.startsWith(`${PREFIX}/`) && !url.startsWith(`${PREFIX}?`)) {
    res.writeHead(404, { "content-type": "application/json" });
    res.end(JSON.stringify({ message: `no route for ${req.method} ${url.split("?")[0]}: only ${PREFIX} is served here` }));
    return;
  }
  const path = url.slice(PREFIX.length);
  const headers: http.OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(req.headers)) if (!HOP_BY_HOP.has(k)) headers[k] = v;

  const upstream = http.request(
    { socketPath, agent, method: req.method, path: path.startsWith("/") ? path : `/${path}`, headers },
    (up) => {
      const out: http.OutgoingHttpHeaders = {};
      for (const [k, v] of Object.entries(up.headers)) if (!HOP_BY_HOP.has(k) && v !== undefined) out[k] = v;
      res.writeHead(up.statusCode ?? 502, up.statusMessage, out);
      up.pipe(res);
      up.on("error", () => res.destroy());
    },
  );
  upstream.on("error", (e) => {
    if (res.headersSent) return void res.destroy();
    res.writeHead(502, { "content-type": "application/json" });
    res.end(JSON.stringify({ message: `PostgREST unreachable: ${e.message}` }));
  });
  req.on("error", () => upstream.destroy());
  req.pipe(upstream);
}

