// A small local HTTP server that records every request it receives, for tests that must count what left the
// app: it stands in for Resend (`RESEND_BASE_URL`) and serves pages to web_fetch. It can be told to fail the next N
// requests or to delay its answers, and it counts TCP connections, so a test can prove that a refused fetch never
// connected at all.
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface CapturedRequest {
  method: string;
  /** Path and query, as received. */
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
  /** The body parsed as JSON, when it is JSON. */
  json?: unknown;
}

/** Answers a request. The default answers like Resend's POST /emails. */
export type CaptureHandler = (req: CapturedRequest, res: ServerResponse, index: number) => void | Promise<void>;

export interface CaptureServer {
  /** `http://<host>:<port>` (IPv6 hosts in brackets). */
  url: string;
  port: number;
  requests: CapturedRequest[];
  /** TCP connections accepted so far. */
  connections: number;
  /** Every response waits this long first. */
  delayMs: number;
  /** The next `n` requests are answered with `status` (default 500) and a Resend-style error body. */
  failNext(n: number, status?: number, body?: unknown): void;
  setHandler(handler: CaptureHandler): void;
  /** Resolves once `n` requests have arrived; rejects at the deadline. */
  waitForRequests(n: number, timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export const resendHandler: CaptureHandler = (req, res, index) => {
  if (req.method === "POST" && req.url === "/emails") {
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ id: `email_${index + 1}` }));
    return;
  }
  res.writeHead(404, { "content-type": "application/json" }).end('{"name":"not_found","message":"no such route"}');
};

export async function startCaptureServer(opts: { host?: string; handler?: CaptureHandler } = {}): Promise<CaptureServer> {
  const host = opts.host ?? "127.0.0.1";
  let handler = opts.handler ?? resendHandler;
  const failures: { status: number; body: unknown }[] = [];

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      const captured: CapturedRequest = { method: req.method ?? "", url: req.url ?? "", headers: req.headers, body };
      try {
        captured.json = body ? JSON.parse(body) : undefined;
      } catch {
        // not JSON
      }
      const index = capture.requests.push(captured) - 1;
      const answer = async () => {
        if (capture.delayMs > 0) await new Promise((r) => setTimeout(r, capture.delayMs));
        const failure = failures.shift();
        if (failure) {
          res.writeHead(failure.status, { "content-type": "application/json" }).end(JSON.stringify(failure.body));
          return;
        }
        await handler(captured, res, index);
      };
      answer().catch((err: unknown) => {
        if (!res.headersSent) res.writeHead(500).end(String(err));
        else res.destroy();
      });
    });
  });
  server.on("connection", () => {
    capture.connections++;
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;

  const capture: CaptureServer = {
    url: `http://${host.includes(":") ? `[${host}]` : host}:${port}`,
    port,
    requests: [],
    connections: 0,
    delayMs: 0,
    failNext(n, status = 500, body = { statusCode: status, name: "application_error", message: "injected failure" }) {
      for (let i = 0; i < n; i++) failures.push({ status, body });
    },
    setHandler(h) {
      handler = h;
    },
    async waitForRequests(n, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (capture.requests.length < n) {
        if (Date.now() > deadline) throw new Error(`expected ${n} requests, got ${capture.requests.length}`);
        await new Promise((r) => setTimeout(r, 10));
      }
    },
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  return capture;
}
