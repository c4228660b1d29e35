// A request body must keep arriving: a client whose body stalls (no byte for BODY_DEADLINE_MS) or trickles (a
// slowloris: less than MIN_BODY_BYTES_PER_SECOND on average once BODY_DEADLINE_MS have passed) is answered 408 — JSON
// under /api, plain text elsewhere — and its connection closed, instead of being held until Node's own requestTimeout
// (300 s; Next sets none) while the handler, or Next's proxy layer in front of it (which reads the whole body before
// any route handler runs), waits. Progress-based rather than a flat deadline from the headers, so a large legitimate
// body that keeps coming (megabytes of step state from Inngest Cloud over a slow link) is never cut. Progress is
// read from the socket's byte count, so the body is not consumed. Installed once per process on the Node HTTP
// server from instrumentation.ts, beside lib/http/forbidden-methods.ts; requests without a body are untouched.
import http from "node:http";
import { isApiUrl, nodeErrorAnswer } from "./node-answer";
import { addRequestHook } from "./server-hooks";

/** How long a body may make no progress at all (and the grace before its average rate is judged). */
export const BODY_DEADLINE_MS = 30_000;
/** The slowest average a body may arrive at once BODY_DEADLINE_MS have passed: 1 KB/s, below any working link
 * (256 KB, the largest API body, in ~4 min; a byte a second is cut at the deadline). */
export const MIN_BODY_BYTES_PER_SECOND = 1024;

/** Watches one request's body; exported for tests (with a short deadline). */
export function watchBody(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  deadlineMs = BODY_DEADLINE_MS,
  minBytesPerSecond = MIN_BODY_BYTES_PER_SECOND,
): void {
  const hasBody = req.headers["transfer-encoding"] !== undefined || Number(req.headers["content-length"] ?? 0) > 0;
  const socket = req.socket;
  if (!hasBody || req.complete || !socket) return;
  const start = Date.now();
  const startBytes = socket.bytesRead;
  let lastBytes = startBytes;
  let lastProgress = start;
  let stopped = false;

  const answer = (message: string) => {
    if (!res.headersSent) {
      const a = nodeErrorAnswer(isApiUrl(req.url ?? ""), "request_timeout", message, { Connection: "close" });
      res.writeHead(408, a.headers);
      res.end(a.body);
    }
    // The rest of the body is not wanted: the connection ends once the answer is out.
    res.once("finish", () => socket.destroy());
    if (res.writableFinished) socket.destroy();
  };

  const check = () => {
    if (stopped || req.complete) return done();
    const now = Date.now();
    const bytes = socket.bytesRead;
    if (bytes !== lastBytes) {
      lastBytes = bytes;
      lastProgress = now;
    }
    const elapsed = now - start;
    if (now - lastProgress >= deadlineMs) {
      done();
      answer(`No part of the request body arrived for ${deadlineMs / 1000} s`);
    } else if (elapsed >= deadlineMs && ((bytes - startBytes) * 1000) / elapsed < minBytesPerSecond) {
      done();
      answer(`The request body is arriving slower than ${minBytesPerSecond} bytes/s`);
    }
  };
  // A few checks per deadline. Each looks after the poll phase (setImmediate), so reads that queued up while the
  // process was busy are counted before the body is judged idle.
  const timer = setInterval(() => setImmediate(check), Math.max(10, Math.min(5_000, Math.floor(deadlineMs / 4))));
  timer.unref();
  const done = () => {
    stopped = true;
    clearInterval(timer);
  };
  req.once("end", done);
  req.once("close", done);
  res.once("close", done);
}

let deadline = BODY_DEADLINE_MS;

/** Installs the deadline on every Node HTTP server of this process (lib/http/server-hooks.ts); `deadlineMs` is for tests. */
export function limitBodyTime(deadlineMs = BODY_DEADLINE_MS): void {
  deadline = deadlineMs;
  addRequestHook("body-deadline", (req, res) => {
    watchBody(req, res, deadline);
    return false;
  });
}
