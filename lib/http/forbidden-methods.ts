// TRACE and TRACK never reach Next's proxy or a route: Next builds a WHATWG Request for every request, and the
// fetch standard forbids these methods (undici throws), so `next start` answered them with a text/plain 500.
// This answers them on the Node HTTP server itself, before Next sees them, with the API's JSON 405. Installed
// once per process from instrumentation.ts (Node runtime only). CONNECT is a separate server event Next does not
// listen for; Node closes such connections itself.
import http from "node:http";

const FORBIDDEN = new Set(["TRACE", "TRACK"]);
const INSTALLED = Symbol.for("nightshift.forbiddenMethods");

export function answerForbiddenMethods(): void {
  const proto = http.Server.prototype as http.Server & { [INSTALLED]?: boolean };
  if (proto[INSTALLED]) return;
  proto[INSTALLED] = true;
  const emit = proto.emit;
  proto.emit = function (this: http.Server, event: string | symbol, ...args: unknown[]): boolean {
    if (event === "request") {
      const [req, res] = args as [http.IncomingMessage, http.ServerResponse];
      if (FORBIDDEN.has((req.method ?? "").toUpperCase())) {
        const body = JSON.stringify({ error: { code: "method_not_allowed", message: `Method ${req.method} is not allowed` } });
        res.writeHead(405, {
          "content-type": "application/json",
          allow: "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS",
          "cache-control": "no-store",
          "x-content-type-options": "nosniff",
          "content-length": Buffer.byteLength(body),
        });
        res.end(body);
        req.resume();
        return true;
      }
    }
    return (emit as (this: http.Server, e: string | symbol, ...a: unknown[]) => boolean).call(this, event, ...args);
  } as typeof proto.emit;
}
