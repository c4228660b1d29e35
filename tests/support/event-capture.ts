// A stand-in for Inngest's event API that records what `inngest.send()` posts, for route tests that check
// exactly which events a request produced. (The end-to-end tests use the real local engine instead.)
import { createServer, type Server } from "node:http";
import { freePort } from "../../local/ports";

export interface CapturedEvent {
  id?: string;
  name: string;
  data: Record<string, unknown>;
}

export interface EventCapture {
  url: string;
  events: CapturedEvent[];
  /** While set, the event API answers 500 (Inngest unreachable). */
  failing: boolean;
  stop(): Promise<void>;
}

export async function startEventCapture(): Promise<EventCapture> {
  const port = await freePort();
  const capture: EventCapture = {
    url: `http://127.0.0.1:${port}`,
    events: [],
    failing: false,
    stop: () => new Promise<void>((r) => server.close(() => r())),
  };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      if (req.method === "POST" && req.url?.startsWith("/e/")) {
        if (capture.failing) {
          res.writeHead(500, { "content-type": "application/json" }).end('{"error":"down"}');
          return;
        }
        const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as CapturedEvent | CapturedEvent[];
        const list = Array.isArray(body) ? body : [body];
        capture.events.push(...list);
        res
          .writeHead(200, { "content-type": "application/json" })
          .end(JSON.stringify({ ids: list.map((e, i) => e.id ?? `evt-${capture.events.length + i}`), status: 200 }));
        return;
      }
      res.writeHead(404).end();
    });
  });
  await new Promise<void>((r) => server.listen(port, "127.0.0.1", () => r()));
  return capture;
}
