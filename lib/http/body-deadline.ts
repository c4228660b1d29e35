// A request body must arrive within BODY_DEADLINE_MS of the request's headers: a client that trickles its body (a
// slowloris) is answered 408 — JSON under /api, plain text elsewhere — and its connection closed, instead of being
// held until Node's own requestTimeout (300 s; Next sets none) while the handler, or Next's proxy layer in front of
// it (which reads the whole body before any route handler runs), waits. Installed once per process on the Node HTTP
// server from instrumentation.ts, beside lib/http/forbidden-methods.ts; requests without a body are untouched.
import http from "node:http";
import { API_CSP, commonSecurityHeaders } from "./security-headers";

/** 256 KB (the largest body the API takes) in 30 s is 8.5 KB/s: slower than any working link. */
export const BODY_DEADLINE_MS = 30_000;

const INSTALLED = Symbol.for("nightshift.bodyDeadline");

/** Starts the deadline for one request; exported for tests (with a short deadline). */
export function watchBody(req: http.IncomingMessage, res: http.ServerResponse, deadlineMs = BODY_DEADLINE_MS): void {
  const hasBody = req.headers["transfer-encoding"] !== undefined || Number(req.headers["content-length"] ?? 0) > 0;
  if (!hasBody || req.complete) return;
  const timer = setTimeout(() => {
    if (req.complete) return;
    if (!res.headersSent) {
      const isApi = /^\/api(\/|\?|$)/.test(req.url ?? "");
      const message = `The request body did not arrive within ${deadlineMs / 1000} s`;
      const body = isApi ? JSON.stringify({ error: { code: "request_timeout", message } }) : message;
      res.writeHead(408, {
        ...commonSecurityHeaders(),
        ...(isApi ? { "Content-Security-Policy": API_CSP } : {}),
        "Content-Type": isApi ? "application/json" : "text/plain; charset=utf-8",
        "Content-Length": String(Buffer.byteLength(body)),
        "Cache-Control": "no-store",
        Connection: "close",
      });
      res.end(body);
    }
    // The rest of the body is not wanted: the connection ends once the answer is out.
    res.once("finish", () => req.socket.destroy());
    if (res.writableFinished) req.socket.destroy();
  }, deadlineMs);
  timer.unref();
  const done = () => clearTimeout(timer);
  req.once("end", done);
  req.once("close", done);
  res.once("close", done);
}

let deadline = BODY_DEADLINE_MS;

/** Installs the deadline on every Node HTTP server of this process (once); `deadlineMs` is for tests. */
export function limitBodyTime(deadlineMs = BODY_DEADLINE_MS): void {
  deadline = deadlineMs;
  const proto = http.Server.prototype as http.Server & { [INSTALLED]?: boolean };
  if (proto[INSTALLED]) return;
  proto[INSTALLED] = true;
  const emit = proto.emit;
  proto.emit = function (this: http.Server, event: string | symbol, ...args: unknown[]): boolean {
    if (event === "request") {
      const [req, res] = args as [http.IncomingMessage, http.ServerResponse];
      watchBody(req, res, deadline);
    }
    return (emit as (this: http.Server, e: string | symbol, ...a: unknown[]) => boolean).call(this, event, ...args);
  } as typeof proto.emit;
}
