// A request body that trickles in (a slowloris) is answered 408 at the deadline and its connection closed — JSON
// under /api — on the Node server itself, so it holds for routes behind Next's proxy layer too (which reads the whole
// body before a handler runs). Before, nothing answered until Node's requestTimeout (300 s). A short deadline here.
import http from "node:http";
import net from "node:net";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { limitBodyTime } from "@/lib/http/body-deadline";

let server: http.Server;
let port = 0;

beforeAll(async () => {
  limitBodyTime(300);
  // Like a route handler: reads the whole body, then answers.
  server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      if (res.headersSent) return;
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ got: Buffer.concat(chunks).length }));
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  port = (server.address() as net.AddressInfo).port;
});

afterAll(async () => {
  limitBodyTime();
  await new Promise((r) => server.close(r));
});

/** Sends the headers and `first`, then nothing more; resolves with what came back when the server closes. */
function trickle(path: string, first: string): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(port, "127.0.0.1");
    let answer = "";
    s.on("data", (d) => (answer += d.toString()));
    s.on("error", () => {});
    s.on("close", () => resolve(answer));
    s.write(`POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n${first}`);
  });
}

describe("a body that stops arriving", () => {
  test("under /api: a JSON 408 request_timeout, then the connection closes", async () => {
    const answer = await trickle("/api/approvals/x", '{"decision":');
    expect(answer).toMatch(/^HTTP\/1\.1 408 /);
    expect(answer).toMatch(/content-type: application\/json/i);
    const body = JSON.parse(answer.slice(answer.indexOf("\r\n\r\n") + 4)) as { error: { code: string } };
    expect(body.error.code).toBe("request_timeout");
  });

  test("elsewhere (a console server action): a plain-text 408", async () => {
    const answer = await trickle("/review", "a=");
    expect(answer).toMatch(/^HTTP\/1\.1 408 /);
    expect(answer).toMatch(/content-type: text\/plain/i);
  });

  test("a body that arrives whole is untouched, and a request without one is never timed", async () => {
    limitBodyTime(10_000);
    const res = await fetch(`http://127.0.0.1:${port}/api/tasks`, { method: "POST", headers: { "content-type": "application/json" }, body: '{"a":1}' });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ got: 7 });
    limitBodyTime(300);
  });

  test("a large body that keeps arriving is never cut, however long it takes in total", async () => {
    // 40 chunks of 1000 bytes, one every 30 ms: about 4 deadlines (300 ms here) in total, never idle for one, and
    // ~33 KB/s — far above the minimum rate even if this process stalls for a while.
    const answer = await steady("/api/inngest", 40, 1000, 30);
    expect(answer).toMatch(/^HTTP\/1\.1 200 /);
    expect(answer).toContain('{"got":40000}');
  });

  test("a body that never stops but arrives slower than the minimum rate (a byte every 20 ms) is a 408", async () => {
    const answer = await steady("/api/tasks", 200, 1, 20);
    expect(answer).toMatch(/^HTTP\/1\.1 408 /);
  });
});

/** Sends `n` chunks of `size` bytes, one every `everyMs`; resolves with what came back when the answer is complete
 * or the server closes. */
function steady(path: string, n: number, size: number, everyMs: number): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(port, "127.0.0.1");
    let answer = "";
    let sent = 0;
    const finish = () => {
      clearInterval(timer);
      s.destroy();
      resolve(answer);
    };
    s.on("data", (d) => {
      answer += d.toString();
      const head = answer.indexOf("\r\n\r\n");
      const len = /content-length: (\d+)/i.exec(answer)?.[1];
      // Complete: as long as its content-length says, or a chunked body's last chunk.
      if (head >= 0 && ((len !== undefined && answer.length >= head + 4 + Number(len)) || answer.endsWith("0\r\n\r\n"))) finish();
    });
    s.on("error", () => {});
    s.on("close", finish);
    s.write(`POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: ${n * size}\r\n\r\n`);
    const timer = setInterval(() => {
      if (sent >= n || s.destroyed) return clearInterval(timer);
      s.write("x".repeat(size));
      sent += 1;
    }, everyMs);
  });
}
