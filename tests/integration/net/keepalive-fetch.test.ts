// The keep-alive fetch the Inngest client gives the SDK and the Supabase admin client uses (lib/net/keepalive-fetch.ts), against a real local server: what the SDK
// reads from a response is what the global fetch would give; requests share one kept-alive connection; a kept-alive
// socket the server dropped is retried once on a fresh one for an idempotent request only (a POST fails as the
// global fetch's would: the SDK retries it itself); a compressed answer is decompressed; network errors look like the
// global fetch's; anything
// it does not handle itself (a redirect, a stream body) still works through the global fetch.
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { keepAliveFetch as sdkFetch } from "../../../lib/net/keepalive-fetch";
import { freePort } from "../../../local/ports";

/** A UTF-8 BOM, text, and an invalid byte: text() must decode them as the global fetch's Response does. */
const BOM_BYTES = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from("hé"), Buffer.from([0xff])]);

let server: Server;
let base: string;
let connections = 0;
const seen: { method: string; url: string; headers: IncomingMessage["headers"]; body: string }[] = [];
/** Sockets whose next request the server drops without answering (a kept-alive socket closed by the peer). */
const dropNext = new WeakSet<Socket>();
let drops = 0;

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      if (dropNext.has(req.socket)) {
        dropNext.delete(req.socket);
        drops++;
        req.socket.destroy();
        return;
      }
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, body: Buffer.concat(chunks).toString() });
      if (req.url === "/conflict") return res.writeHead(409, "Conflict", { "content-type": "text/plain" }).end("stale");
      if (req.url === "/moved") return res.writeHead(307, { location: "/ok" }).end();
      if (req.url === "/see-other") return res.writeHead(303, { location: "/ok" }).end();
      if (req.url === "/no-location") return res.writeHead(302, { "content-type": "text/plain" }).end("nowhere");
      if (req.url === "/empty") return res.writeHead(204).end();
      if (req.url === "/bom") return res.writeHead(200, { "content-type": "text/plain" }).end(BOM_BYTES);
      if (req.url === "/gzip") return res.writeHead(200, { "content-encoding": "gzip" }).end(gzipSync(JSON.stringify({ z: 1 })));
      if (req.url === "/drop-after") dropNext.add(req.socket);
      res.writeHead(200, { "content-type": "application/json", "x-two": ["a", "b"] }).end(JSON.stringify({ status: 200 }));
    });
  });
  server.on("connection", () => connections++);
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

describe("keepAliveFetch (the Inngest client's and the Supabase client's fetch)", () => {
  test("a POST with a JSON body: status, headers and body as fetch gives them, over one kept-alive connection", async () => {
    const before = connections;
    for (let i = 0; i < 5; i++) {
      const res = await sdkFetch(new URL(`${base}/v1/checkpoint/run-${i}/async`), {
        method: "POST",
        body: JSON.stringify({ i, text: "ü" }),
        headers: { "Content-Type": "application/json", Authorization: "Bearer k" },
      });
      expect(res.status).toBe(200);
      expect(res.ok).toBe(true);
      expect(res.headers.get("content-type")).toBe("application/json");
      expect(res.headers.get("x-two")).toBe("a, b");
      expect(await res.json()).toEqual({ status: 200 });
      const got = seen.at(-1)!;
      expect(got).toMatchObject({ method: "POST", url: `/v1/checkpoint/run-${i}/async`, body: JSON.stringify({ i, text: "ü" }) });
      expect(got.headers["authorization"]).toBe("Bearer k");
      expect(got.headers["content-length"]).toBe(String(Buffer.byteLength(JSON.stringify({ i, text: "ü" }))));
    }
    expect(connections - before).toBe(1);
  });

  test("the body behaves as a fetch Response's: a stream on demand, read once, clonable", async () => {
    const post = () => sdkFetch(`${base}/x`, { method: "POST", body: "{}" });
    const a = await post();
    expect(a).toBeInstanceOf(Response);
    expect(a.bodyUsed).toBe(false);
    expect(await a.text()).toBe(JSON.stringify({ status: 200 }));
    expect(a.bodyUsed).toBe(true);
    await expect(a.json()).rejects.toThrow(TypeError);
    await expect(a.text()).rejects.toThrow(TypeError);
    // Read directly (text/json decode the bytes without a stream): the stream and clone() see it read too.
    expect(() => a.clone()).toThrow(TypeError);
    expect(a.body!.locked).toBe(true);
    await expect(a.arrayBuffer()).rejects.toThrow(TypeError);
    const j = await post();
    expect(await j.json()).toEqual({ status: 200 });
    expect(j.bodyUsed).toBe(true);
    await expect(j.json()).rejects.toThrow(TypeError);
    const b = await post();
    const copy = b.clone();
    expect(await b.json()).toEqual({ status: 200 });
    expect(await copy.text()).toBe(JSON.stringify({ status: 200 }));
    // Headers are built when first read: the same object each time, and the clone's are the same.
    expect(b.headers).toBe(b.headers);
    expect(b.headers.get("x-two")).toBe("a, b");
    expect([...copy.headers]).toEqual([...b.headers]);
    const c = await post();
    const chunks: Uint8Array[] = [];
    const reader = c.body!.getReader();
    for (let r = await reader.read(); !r.done; r = await reader.read()) chunks.push(r.value);
    expect(Buffer.concat(chunks).toString()).toBe(JSON.stringify({ status: 200 }));
    expect(c.bodyUsed).toBe(true);
    expect(new Uint8Array(await (await post()).arrayBuffer()).length).toBe(JSON.stringify({ status: 200 }).length);
  });

  test("text() decodes as the global fetch's Response: the BOM dropped, an invalid byte as U+FFFD", async () => {
    const expected = await new Response(BOM_BYTES).text();
    expect(await (await sdkFetch(`${base}/bom`)).text()).toBe(expected);
    expect(await (await globalThis.fetch(`${base}/bom`)).text()).toBe(expected);
  });

  test("a non-2xx answer is a response, not an error; a 204 has no body", async () => {
    const res = await sdkFetch(`${base}/conflict`, { method: "POST", body: "{}" });
    expect([res.status, res.ok, res.statusText, await res.text()]).toEqual([409, false, "Conflict", "stale"]);
    // A bodiless POST goes with content-length 0, as fetch sends it (node:http does so on end() without data).
    expect((await sdkFetch(`${base}/no-body`, { method: "POST" })).status).toBe(200);
    expect(seen.at(-1)!.headers).toMatchObject({ "content-length": "0" });
    expect(seen.at(-1)!.headers["transfer-encoding"]).toBeUndefined();
    const empty = await sdkFetch(`${base}/empty`);
    expect(empty.status).toBe(204);
    expect(empty.body).toBeNull();
  });

  test("a kept-alive socket the server dropped: an idempotent request is retried once on a fresh connection", async () => {
    // The first request marks its socket; the next request on that socket is dropped unanswered.
    expect((await sdkFetch(`${base}/drop-after`)).status).toBe(200);
    const count = seen.length;
    const conns = connections;
    const res = await sdkFetch(`${base}/after-drop`);
    expect(res.status).toBe(200);
    expect(seen.slice(count).map((s) => s.url)).toEqual(["/after-drop"]);
    // It went out on the kept-alive socket (dropped), then on exactly one new connection.
    expect(connections - conns).toBe(1);
  });

  test("a kept-alive socket the server dropped: a POST is not sent again (the server may have acted on it)", async () => {
    expect((await sdkFetch(`${base}/drop-after`, { method: "POST", body: "1" })).status).toBe(200);
    const before = drops;
    const out = await sdkFetch(`${base}/after-drop-post`, { method: "POST", body: "2" }).catch((e: unknown) => e);
    // Only if the kept-alive socket was still there (not closed idle in between, under a very slow machine) is the
    // outcome defined: the global fetch's error, and nothing sent a second time.
    if (drops > before) {
      expect(out).toBeInstanceOf(TypeError);
      expect((out as TypeError).message).toBe("fetch failed");
      expect(seen.filter((s) => s.url === "/after-drop-post")).toEqual([]);
    }
    expect(drops + seen.filter((s) => s.url === "/after-drop-post").length - before).toBe(1);
  });

  test("a compressed answer (never asked for) is decompressed, as the global fetch does", async () => {
    const res = await sdkFetch(`${base}/gzip`, { method: "POST", body: "{}" });
    expect(await res.json()).toEqual({ z: 1 });
  });

  test("a refused connection fails as the global fetch does (TypeError 'fetch failed' with the cause)", async () => {
    const port = await freePort();
    const err = await sdkFetch(`http://127.0.0.1:${port}/x`, { method: "POST", body: "{}" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TypeError);
    expect((err as TypeError).message).toBe("fetch failed");
    expect(((err as TypeError).cause as { code?: string }).code).toBe("ECONNREFUSED");
  });

  test("what it does not handle itself goes through the global fetch: redirects, stream bodies, Request objects", async () => {
    const moved = await sdkFetch(`${base}/moved`);
    expect([moved.status, moved.url]).toEqual([200, `${base}/ok`]);
    const stream = new Blob(["streamed"]).stream();
    const streamed = await sdkFetch(`${base}/stream`, { method: "POST", body: stream, duplex: "half" } as RequestInit);
    expect(streamed.status).toBe(200);
    expect(seen.at(-1)).toMatchObject({ url: "/stream", body: "streamed" });
    const viaRequest = await sdkFetch(new Request(`${base}/request`, { method: "POST", body: "r" }));
    expect(viaRequest.status).toBe(200);
    expect(seen.at(-1)).toMatchObject({ url: "/request", body: "r" });
  });

  test("a redirected POST is sent once: a 303 is followed by a GET without the body, a 307 re-sends it to the new place only", async () => {
    const from = seen.length;
    const seeOther = await sdkFetch(`${base}/see-other`, { method: "POST", headers: { "content-type": "application/json" }, body: "{\"n\":1}" });
    expect([seeOther.status, seeOther.url]).toEqual([200, `${base}/ok`]);
    const temporary = await sdkFetch(`${base}/moved`, { method: "POST", body: "again" });
    expect([temporary.status, temporary.url]).toEqual([200, `${base}/ok`]);
    expect(seen.slice(from).map((r) => [r.method, r.url, r.body, r.headers["content-type"]])).toEqual([
      ["POST", "/see-other", "{\"n\":1}", "application/json"],
      ["GET", "/ok", "", undefined],
      ["POST", "/moved", "again", "text/plain;charset=UTF-8"],
      ["POST", "/ok", "again", "text/plain;charset=UTF-8"],
    ]);
    // A redirect status without a Location is an answer, as fetch gives it.
    const nowhere = await sdkFetch(`${base}/no-location`, { method: "POST", body: "x" });
    expect([nowhere.status, await nowhere.text()]).toEqual([302, "nowhere"]);
    expect(seen.slice(from + 4).map((r) => r.url)).toEqual(["/no-location"]);
  });

  test("an aborted signal aborts the request", async () => {
    const ctl = new AbortController();
    ctl.abort(new Error("stop"));
    await expect(sdkFetch(`${base}/x`, { signal: ctl.signal })).rejects.toThrow("stop");
  });
});
