// The local `/rest/v1` gateway (local/db/rest-proxy.ts) in front of a real PostgREST: it passes bytes through and
// rewrites only request lines, so what must hold is the framing — a chunked body split into pieces as small as one
// byte, several requests written at once on one connection (answered in order), a body that arrives after its head —
// and its own answers: 404 outside /rest/v1 (after the answers to earlier requests), 502 when PostgREST is not there.
import { connect, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { bodyFraming, startRestProxy, upstreamTarget } from "../../../local/db/rest-proxy";
import { createTestSupabase, type TestSupabase } from "../../support/supabase";

let sb: TestSupabase;
let host: { port: number };

beforeAll(async () => {
  sb = await createTestSupabase();
  host = { port: Number(new URL(sb.supabaseUrl).port) };
});
afterAll(async () => {
  await sb?.stop();
});

/** Writes the pieces one after the other on one connection and reads until `answers` HTTP answers have arrived in full. */
async function exchange(pieces: (string | Buffer)[], answers: number, port = host.port): Promise<{ status: number; body: string }[]> {
  const socket: Socket = connect({ port, host: "127.0.0.1" });
  await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("error", reject));
  const received: Buffer[] = [];
  const done = new Promise<{ status: number; body: string }[]>((resolve, reject) => {
    const check = () => {
      const parsed = parseAnswers(Buffer.concat(received));
      if (parsed.length >= answers) resolve(parsed);
    };
    socket.on("data", (c: Buffer) => {
      received.push(c);
      check();
    });
    socket.on("end", () => {
      const parsed = parseAnswers(Buffer.concat(received));
      if (parsed.length >= answers) resolve(parsed);
      else reject(new Error(`connection ended after ${parsed.length} answer(s): ${Buffer.concat(received).toString()}`));
    });
    socket.on("error", reject);
  });
  for (const p of pieces) {
    socket.write(p);
    await new Promise((r) => setImmediate(r)); // separate writes: separate reads on the other side
  }
  try {
    return await done;
  } finally {
    socket.destroy();
  }
}

/** HTTP/1.1 answers with Content-Length or chunked bodies, as many as are complete. */
function parseAnswers(buf: Buffer): { status: number; body: string }[] {
  const out: { status: number; body: string }[] = [];
  let i = 0;
  for (;;) {
    const end = buf.indexOf("\r\n\r\n", i);
    if (end < 0) return out;
    const head = buf.toString("latin1", i, end);
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1]);
    const length = /\r\ncontent-length:\s*(\d+)/i.exec(head);
    let j = end + 4;
    if (length) {
      const n = Number(length[1]);
      if (buf.length < j + n) return out;
      out.push({ status, body: buf.toString("utf8", j, j + n) });
      i = j + n;
    } else if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) {
      const parts: Buffer[] = [];
      for (;;) {
        const lineEnd = buf.indexOf("\r\n", j);
        if (lineEnd < 0) return out;
        const size = parseInt(buf.toString("latin1", j, lineEnd), 16);
        if (buf.length < lineEnd + 2 + size + 2) return out;
        parts.push(buf.subarray(lineEnd + 2, lineEnd + 2 + size));
        j = lineEnd + 2 + size + 2;
        if (size === 0) break;
      }
      out.push({ status, body: Buffer.concat(parts).toString("utf8") });
      i = j;
    } else {
      out.push({ status, body: "" });
      i = j;
    }
  }
}

const auth = () => `apikey: ${sb.secretKey}\r\nauthorization: Bearer ${sb.secretKey}\r\nhost: 127.0.0.1\r\n`;

function chunked(text: string, size: number): string {
  let out = "";
  for (let i = 0; i < text.length; i += size) {
    const part = text.slice(i, i + size);
    out += `${Buffer.byteLength(part).toString(16)};ext=1\r\n${part}\r\n`;
  }
  // No trailer fields: PostgREST's server (warp) closes the connection after a request that has some.
  return `${out}0\r\n\r\n`;
}

describe("the /rest/v1 proxy in front of PostgREST", () => {
  test("a chunked body in one-byte pieces, then two requests written at once: all answered, in order", async () => {
    const prompt = `proxied ${"é".repeat(3000)} end`;
    const args = JSON.stringify({
      p_agent_id: "research", p_prompt: prompt, p_input: { a: [1, 2] }, p_priority: 0, p_mode: "now", p_require_approval: false,
      p_callback_url: null, p_api_key_id: null, p_idempotency_key: null, p_request_hash: null,
    });
    const head = `POST /rest/v1/rpc/create_task HTTP/1.1\r\n${auth()}content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n`;
    const body = Buffer.from(chunked(args, 700));
    const pieces: (string | Buffer)[] = [head];
    // The first 300 bytes one at a time (chunk-size lines and data split everywhere), the rest in one piece.
    for (let i = 0; i < 300; i++) pieces.push(body.subarray(i, i + 1));
    // The rest with the next request right behind the last chunk: where the body ends must be found.
    pieces.push(Buffer.concat([body.subarray(300), Buffer.from(`GET /rest/v1/agents?select=id&id=eq.outreach HTTP/1.1\r\n${auth()}\r\n`)]));
    const [created, next] = await exchange(pieces, 2);
    expect(created!.status).toBe(200);
    expect(next).toEqual({ status: 200, body: '[{"id":"outreach"}]' });
    const taskId = (JSON.parse(created!.body) as { task_id: string }[])[0]!.task_id;

    const get = (path: string) => `GET ${path} HTTP/1.1\r\n${auth()}\r\n`;
    const answers = await exchange(
      [
        "\r\n" + get(`/rest/v1/tasks?select=prompt,input&id=eq.${taskId}`) +
          `POST /rest/v1/rpc/api_key_hash HTTP/1.1\r\n${auth()}content-type: application/json\r\ncontent-length: 17\r\n\r\n` +
          '{"p_key_id":"no"}' +
          get("/rest/v1/agents?select=id&order=id"),
      ],
      3,
    );
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200]);
    expect(JSON.parse(answers[0]!.body)).toEqual([{ prompt, input: { a: [1, 2] } }]);
    expect(JSON.parse(answers[1]!.body)).toBeNull();
    expect(JSON.parse(answers[2]!.body)).toEqual([{ id: "content" }, { id: "outreach" }, { id: "research" }]);
  });

  test("a body that arrives after its head; the query string kept", async () => {
    const body = JSON.stringify({ p_key_id: "none" });
    const answers = await exchange(
      [
        `POST /rest/v1/rpc/api_key_hash HTTP/1.1\r\n${auth()}content-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n`,
        body.slice(0, 5),
        body.slice(5),
        `GET /rest/v1/agents?select=id&id=eq.content HTTP/1.1\r\n${auth()}\r\n`,
      ],
      2,
    );
    expect(answers[0]).toEqual({ status: 200, body: "null" });
    expect(answers[1]).toEqual({ status: 200, body: '[{"id":"content"}]' });
  });

  test("outside /rest/v1: a JSON 404 after the answers to the requests before it, then the connection closes", async () => {
    const answers = await exchange(
      [`GET /rest/v1/agents?select=id&id=eq.research HTTP/1.1\r\n${auth()}\r\nGET /rest/v10/agents HTTP/1.1\r\nhost: x\r\n\r\n`],
      2,
    );
    expect(answers[0]).toEqual({ status: 200, body: '[{"id":"research"}]' });
    expect(answers[1]!.status).toBe(404);
    expect(JSON.parse(answers[1]!.body)).toEqual({ message: "no route for GET /rest/v10/agents: only /rest/v1 is served here" });

    const res = await fetch(`${sb.supabaseUrl}/auth/v1/settings`);
    expect(res.status).toBe(404);
    expect(res.headers.get("content-type")).toBe("application/json");
    await res.json();
  });

  test("supabase-js through it: reads, writes and errors as PostgREST gives them", async () => {
    const { data, error } = await sb.admin.from("agents").select("id").eq("id", "content").single();
    expect(error).toBeNull();
    expect(data).toEqual({ id: "content" });
    const bad = await sb.admin.from("agents").select("no_such_column");
    expect(bad.status).toBe(400);
    expect(bad.error?.code).toBe("42703");
  });

  test("PostgREST not there: 502 with a JSON message", async () => {
    const proxy = await startRestProxy({ socketPath: `/tmp/nightshift-no-such-${process.pid}.sock` });
    try {
      const res = await fetch(`http://127.0.0.1:${proxy.port}/rest/v1/agents`);
      expect(res.status).toBe(502);
      expect(((await res.json()) as { message: string }).message).toMatch(/^PostgREST unreachable: /);
    } finally {
      await proxy.close();
    }
  });
});

describe("framing and paths", () => {
  test("request bodies: Content-Length, chunked, none, and what cannot be framed", () => {
    expect(bodyFraming("host: x\r\ncontent-length: 12")).toBe(12);
    expect(bodyFraming("Content-Length: 5, 5\r\nhost: x")).toBe(5);
    expect(bodyFraming("host: x")).toBe(0);
    expect(bodyFraming("Transfer-Encoding: gzip, chunked\r\ncontent-length: 3")).toBe("chunked");
    expect(bodyFraming("transfer-encoding: gzip")).toBe("bad");
    expect(bodyFraming("content-length: 1\r\ncontent-length: 2")).toBe("bad");
    expect(bodyFraming("content-length: -1")).toBe("bad");
  });

  test("only /rest/v1 and what is under it", () => {
    expect(upstreamTarget("/rest/v1")).toBe("/");
    expect(upstreamTarget("/rest/v1/")).toBe("/");
    expect(upstreamTarget("/rest/v1?a=b")).toBe("/?a=b");
    expect(upstreamTarget("/rest/v1/rpc/x?y=1")).toBe("/rpc/x?y=1");
    expect(upstreamTarget("/rest/v10/x")).toBeNull();
    expect(upstreamTarget("/auth/v1/settings")).toBeNull();
    expect(upstreamTarget("http://h/rest/v1/x")).toBeNull();
  });
});
