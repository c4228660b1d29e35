// bench:submit's stand-in for Inngest Cloud's event API in front of the local engine, for the API server only.
//
// While the runs are "elsewhere" (the engine held with SIGSTOP), a send to a held engine would hang until the relay's
// 10 s send timeout: the API server's relay would then do almost none of its work (one claim, a hung send, a
// mark_failed per 10 s) — cheaper than on Vercel, where Inngest Cloud accepts a batch in milliseconds and the relay
// claims, sends and marks every batch. So while held, this gate answers every event batch at once, as the event API
// does (`{ ids, status: 200 }`), and keeps the batch; on release it delivers the kept batches to the engine in order,
// so their tasks still run. Otherwise (and for every other request) it passes the request through unchanged.
import { randomUUID } from "node:crypto";
import { Agent, createServer, request, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";

interface Kept {
  path: string;
  contentType: string;
  body: Buffer;
}

export interface EventGate {
  url: string;
  /** Hold: accept event batches and keep them. */
  hold(): void;
  /** Release: deliver what was kept to the engine (in order), then pass through again. Resolves when delivered. */
  release(): Promise<{ batches: number; events: number }>;
  /** Event batches accepted while held, in all. */
  keptTotal(): number;
  stop(): Promise<void>;
}

const agent = new Agent({ keepAlive: true, maxSockets: 32 });

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

function forward(
  target: URL,
  method: string,
  path: string,
  headers: Record<string, string | string[] | undefined>,
  body: Buffer,
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const h: Record<string, string | string[] | undefined> = { ...headers, host: target.host, "content-length": String(body.length) };
    delete h["transfer-encoding"];
    delete h["connection"];
    const req = request({ host: target.hostname, port: target.port, method, path, headers: h, agent }, (res) => {
      readBody(res).then((b) => resolve({ status: res.statusCode ?? 502, headers: res.headers, body: b }), reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}

export async function startEventGate(engineUrl: string): Promise<EventGate> {
  const target = new URL(engineUrl);
  let held = false;
  let keptTotal = 0;
  const kept: Kept[] = [];

  const server: Server = createServer((req, res) => {
    void (async () => {
      const body = await readBody(req);
      const path = req.url ?? "/";
      if (held && req.method === "POST" && path.startsWith("/e/")) {
        let count = 1;
        try {
          const parsed = JSON.parse(body.toString("utf8")) as unknown;
          count = Array.isArray(parsed) ? parsed.length : 1;
        } catch {}
        kept.push({ path, contentType: String(req.headers["content-type"] ?? "application/json"), body });
        keptTotal++;
        const text = JSON.stringify({ ids: Array.from({ length: count }, () => randomUUID()), status: 200 });
        res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
        res.end(text);
        return;
      }
      const out = await forward(target, req.method ?? "GET", path, req.headers, body);
      const h = { ...out.headers };
      delete h["transfer-encoding"];
      delete h["connection"];
      h["content-length"] = String(out.body.length);
      res.writeHead(out.status, h);
      res.end(out.body);
    })().catch((e: unknown) => {
      if (!res.headersSent) res.writeHead(502, { "content-type": "text/plain" });
      res.end(`event gate: ${e instanceof Error ? e.message : String(e)}`);
    });
  });
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));

  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    hold: () => {
      held = true;
    },
    release: async () => {
      held = false;
      let batches = 0;
      let events = 0;
      // Sends that arrive meanwhile pass through at once; the kept ones follow in their order.
      while (kept.length) {
        const k = kept.shift()!;
        const out = await forward(target, "POST", k.path, { "content-type": k.contentType }, k.body);
        if (out.status >= 300) throw new Error(`the engine refused a kept event batch (HTTP ${out.status}): ${out.body.toString("utf8").slice(0, 200)}`);
        batches++;
        try {
          const parsed = JSON.parse(k.body.toString("utf8")) as unknown;
          events += Array.isArray(parsed) ? parsed.length : 1;
        } catch {}
      }
      return { batches, events };
    },
    keptTotal: () => keptTotal,
    stop: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      agent.destroy();
    },
  };
}
