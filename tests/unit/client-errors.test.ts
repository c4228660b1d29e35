// Requests Node's HTTP parser refuses (an oversized header block, a malformed request line) are answered in the API's
// shape — JSON `{ error: { code, message } }` with the security headers — on the Node server itself, since they never
// become requests Next could answer. Before, Node wrote a bare status line ("431 Request Header Fields Too Large", no
// body) and closed.
import http from "node:http";
import net from "node:net";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { answerClientErrors } from "@/lib/http/client-errors";

let server: http.Server;
let port = 0;

beforeAll(async () => {
  answerClientErrors();
  server = http.createServer((_req, res) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.end('{"ok":true}');
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  port = (server.address() as net.AddressInfo).port;
});

afterAll(async () => {
  await new Promise((r) => server.close(r));
});

/** Writes `raw` and resolves with everything the server sent back when the connection closes. */
function exchange(raw: string, p = port): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(p, "127.0.0.1");
    let answer = "";
    s.on("data", (d) => (answer += d.toString("latin1")));
    s.on("error", () => {});
    s.on("close", () => resolve(answer));
    s.write(raw);
  });
}

function parse(answer: string): { status: number; headers: string; body: string } {
  const split = answer.indexOf("\r\n\r\n");
  return { status: Number(answer.slice(9, 12)), headers: answer.slice(0, split), body: answer.slice(split + 4) };
}

const BIG = "x".repeat(20_000); // over Node's 16 KB header limit

describe("requests Node's parser refuses", () => {
  test("an oversized header under /api: a JSON 431 request_header_too_large with the security headers", async () => {
    const a = parse(await exchange(`GET /api/tasks HTTP/1.1\r\nHost: x\r\nX-Big: ${BIG}\r\n\r\n`));
    expect(a.status).toBe(431);
    expect(a.headers).toMatch(/content-type: application\/json/i);
    expect(a.headers).toMatch(/x-content-type-options: nosniff/i);
    expect(a.headers).toMatch(/content-security-policy: default-src 'none'/i);
    expect(a.headers).toMatch(/connection: close/i);
    const body = JSON.parse(a.body) as { error: { code: string; message: string } };
    expect(body.error.code).toBe("request_header_too_large");
    expect(body.error.message).toMatch(/headers are too large/);
  });

  test("an oversized header for a console page: a plain-text 431", async () => {
    const a = parse(await exchange(`GET /review HTTP/1.1\r\nHost: x\r\nCookie: ${BIG}\r\n\r\n`));
    expect(a.status).toBe(431);
    expect(a.headers).toMatch(/content-type: text\/plain/i);
    expect(a.body).toMatch(/headers are too large/);
  });

  test("a malformed request: a JSON 400 invalid_request (its path unknown, so the API's shape)", async () => {
    const a = parse(await exchange("NOT A REQUEST\r\n\r\n"));
    expect(a.status).toBe(400);
    expect(a.headers).toMatch(/content-type: application\/json/i);
    expect((JSON.parse(a.body) as { error: { code: string } }).error.code).toBe("invalid_request");
  });

  test("an ordinary request is untouched, and a server's own clientError listener keeps its say", async () => {
    const ok = await fetch(`http://127.0.0.1:${port}/api/tasks`);
    expect(ok.status).toBe(200);
    const own = http.createServer((_q, r) => r.end());
    own.on("clientError", (_e, socket) => socket.end("HTTP/1.1 400 Own\r\nConnection: close\r\n\r\n"));
    await new Promise<void>((r) => own.listen(0, "127.0.0.1", r));
    try {
      const a = await exchange(`GET /api/x HTTP/1.1\r\nHost: x\r\nX-Big: ${BIG}\r\n\r\n`, (own.address() as net.AddressInfo).port);
      expect(a).toMatch(/^HTTP\/1\.1 400 Own/);
    } finally {
      await new Promise((r) => own.close(r));
    }
  });
});
