// web_fetch against real local HTTP servers. Nothing here may reach a non-loopback address: every socket connect in
// this process is recorded (net.Socket.prototype.connect is wrapped), and each refusal asserts that no connection
// was attempted at all — the refusal happens before connecting. Successful fetches assert that every connection
// went to a loopback address.
import net from "node:net";
import { gzipSync } from "node:zlib";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from "vitest";
import type { AdminClient } from "../../../lib/db/admin";
import { runToolCall } from "../../../lib/agents/tools";
import { loadToolConfig, type ToolConfigOverrides } from "../../../lib/agents/tools/config";
import type { ResolvedAddress } from "../../../lib/agents/tools/web-fetch";
import { startCaptureServer, type CaptureServer } from "../../support/capture-server";

// ---- every outgoing connection of this process, recorded ----
const socketConnects: unknown[] = [];
const realConnect = net.Socket.prototype.connect;
beforeAll(() => {
  net.Socket.prototype.connect = function (this: net.Socket, ...args: unknown[]) {
    socketConnects.push(args[0]);
    return (realConnect as (...a: unknown[]) => net.Socket).apply(this, args);
  } as typeof realConnect;
});
afterAll(() => {
  net.Socket.prototype.connect = realConnect;
});

const connected: { host: string; address: string; port: number }[] = [];
beforeEach(() => {
  socketConnects.length = 0;
  connected.length = 0;
});
afterEach(() => {
  for (const c of connected) expect(["127.0.0.1", "::1"], `connected to ${c.address}`).toContain(c.address);
});

// A database the tool must never touch (web_fetch has no side effect).
const noDb = new Proxy({}, {
  get() {
    throw new Error("web_fetch must not use the database");
  },
}) as AdminClient;

function ctx(overrides: ToolConfigOverrides["webFetch"] = {}, toolUseId = "toolu_fetch") {
  const config = loadToolConfig({}, {
    webFetch: { onConnect: (c) => connected.push(c), ...overrides },
  });
  return { db: noDb, taskId: "00000000-0000-4000-8000-000000000001", toolUseId, config };
}

async function fetchTool(url: unknown, overrides: ToolConfigOverrides["webFetch"] = {}, extra: Record<string, unknown> = {}) {
  const res = await runToolCall("web_fetch", { url, ...extra }, ctx(overrides));
  return { ...res, data: res.is_error ? undefined : (JSON.parse(res.content) as Record<string, unknown>) };
}

/** A resolver for made-up names; counts its calls. */
function fakeDns(table: Record<string, string[] | ((call: number) => string[])>) {
  const calls: string[] = [];
  const resolve = async (host: string): Promise<ResolvedAddress[]> => {
    calls.push(host);
    const entry = table[host];
    if (!entry) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: "ENOTFOUND" });
    const list = typeof entry === "function" ? entry(calls.filter((h) => h === host).length) : entry;
    return list.map((address) => ({ address, family: net.isIP(address) }));
  };
  return { resolve, calls };
}

let local: CaptureServer; // 127.0.0.1
let local6: CaptureServer | undefined; // ::1, when the machine has IPv6 loopback
beforeAll(async () => {
  local = await startCaptureServer({
    handler: (req, res) => {
      const path = req.url;
      if (path === "/page") {
        res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(PAGE);
      } else if (path === "/json") {
        res.writeHead(200, { "content-type": "application/json" }).end('{"hello":"world"}');
      } else if (path === "/gzip") {
        res.writeHead(200, { "content-type": "text/plain", "content-encoding": "gzip" }).end(gzipSync("compressed hello"));
      } else if (path === "/big") {
        res.writeHead(200, { "content-type": "text/plain" });
        const line = "x".repeat(1023) + "\n";
        let sent = 0;
        const pump = () => {
          while (sent < 4096) {
            sent++;
            if (!res.write(line)) return void res.once("drain", pump);
          }
          res.end();
        };
        res.on("error", () => {});
        pump();
      } else if (path === "/stall-body") {
        res.writeHead(200, { "content-type": "text/plain" });
        res.write("the first bytes, then nothing");
      } else if (path === "/stall-headers") {
        // never answers
      } else if (path === "/png") {
        res.writeHead(200, { "content-type": "image/png" }).end(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 0, 0]));
      } else if (path === "/octet") {
        res.writeHead(200, { "content-type": "application/octet-stream" }).end(Buffer.from([1, 2, 3, 0]));
      } else if (path === "/untyped-binary") {
        res.removeHeader("content-type");
        res.writeHead(200).end(Buffer.from([0x50, 0x4b, 3, 4, 0, 0, 0, 0]));
      } else if (path.startsWith("/redirect?to=")) {
        res.writeHead(302, { location: decodeURIComponent(path.slice("/redirect?to=".length)) }).end();
      } else if (path.startsWith("/loop")) {
        const n = Number(path.slice("/loop".length) || 0);
        res.writeHead(301, { location: `/loop${n + 1}` }).end();
      } else if (path === "/echo-host") {
        res.writeHead(200, { "content-type": "text/plain" }).end(`host=${req.headers.host}`);
      } else {
        res.writeHead(404, { "content-type": "text/plain" }).end("not found");
      }
    },
  });
  local6 = await startCaptureServer({ host: "::1" }).catch(() => undefined);
});
afterAll(async () => {
  await local?.stop();
  await local6?.stop();
});

const PAGE = `<!doctype html><html><head><title>Overnight &amp; News</title>
<style>body { color: red }</style><script>window.secret = "do not show";</script></head>
<body><h1>Postgres 18 released</h1><p>It is <b>faster</b>.</p><img src="/cat.png" alt="a cat">
<p><a href="/more">Read more</a></p><noscript>enable js</noscript></body></html>`;

// ---------------------------------------------------------------------------------------------------------------

describe("web_fetch refuses private and special addresses before connecting", () => {
  test.each([
    ["http://127.0.0.1:PORT/page", /loopback/],
    ["http://10.1.2.3/", /private/],
    ["http://10.0.0.1:8080/admin", /private/],
    ["http://172.16.5.4/", /private/],
    ["http://192.168.1.1/", /private/],
    ["http://169.254.169.254/latest/meta-data/", /metadata/],
    ["http://100.64.0.1/", /carrier-grade NAT/],
    ["http://0.0.0.0:PORT/", /unspecified/],
    ["http://224.0.0.1/", /multicast/],
    ["http://255.255.255.255/", /broadcast/],
    ["http://192.0.2.10/", /documentation/],
    ["http://198.18.0.1/", /benchmarking/],
    ["http://[::1]:PORT/", /loopback/],
    ["http://[::ffff:127.0.0.1]:PORT/", /IPv4-mapped loopback/],
    ["http://[::ffff:7f00:1]:PORT/", /IPv4-mapped loopback/],
    ["http://[::ffff:169.254.169.254]/", /IPv4-mapped cloud metadata/],
    ["http://[::127.0.0.1]:PORT/", /IPv4-compatible loopback/],
    ["http://[64:ff9b::10.0.0.1]/", /NAT64 private/],
    ["http://[2002:a00:1::]/", /6to4 private/],
    ["http://[fd00:ec2::254]/", /metadata/],
    ["http://[fe80::1]/", /link-local/],
    ["http://[fc00::1]/", /unique-local/],
    ["http://[ff02::1]/", /multicast/],
    ["http://[::]:PORT/", /unspecified/],
    ["http://[2001:db8::1]/", /documentation/],
    ["http://2130706433:PORT/", /loopback/], // decimal 127.0.0.1
    ["http://0x7f.1:PORT/", /loopback/], // hex/short form of 127.0.0.1
  ])("%s", async (template, reason) => {
    const before = local.connections;
    const res = await fetchTool(template.replace("PORT", String(local.port)));
    expect(res.is_error).toBe(true);
    expect(res.content).toMatch(/^refused: /);
    expect(res.content).toMatch(reason);
    expect(socketConnects).toEqual([]);
    expect(connected).toEqual([]);
    expect(local.connections).toBe(before);
  });

  test("[::1] is refused and the IPv6 loopback server sees no connection", async () => {
    if (!local6) return; // no IPv6 loopback on this machine; the literal case above still covers the check
    const res = await fetchTool(`${local6.url}/`);
    expect(res.is_error).toBe(true);
    expect(res.content).toMatch(/loopback/);
    expect(local6.connections).toBe(0);
    expect(socketConnects).toEqual([]);
  });

  test("localhost (resolved by the system resolver) is refused", async () => {
    const before = local.connections;
    const res = await fetchTool(`http://localhost:${local.port}/page`);
    expect(res.is_error).toBe(true);
    expect(res.content).toMatch(/localhost resolves to (127\.0\.0\.1|::1).*loopback|loopback.*localhost resolves/);
    expect(socketConnects).toEqual([]);
    expect(local.connections).toBe(before);
  });

  test("a made-up name that resolves to a private address is refused, as is one with any private answer", async () => {
    const dns = fakeDns({
      "intranet.example": ["10.0.0.7"],
      "mixed.example": ["93.184.216.34", "10.0.0.7"],
      "meta.example": ["169.254.169.254"],
      "mapped.example": ["::ffff:10.0.0.7"],
    });
    for (const [host, reason] of [
      ["intranet.example", /intranet\.example resolves to 10\.0\.0\.7.*|private/],
      ["mixed.example", /10\.0\.0\.7/],
      ["meta.example", /metadata/],
      ["mapped.example", /IPv4-mapped private/],
    ] as const) {
      const res = await fetchTool(`http://${host}/secret`, { resolve: dns.resolve });
      expect(res.is_error, host).toBe(true);
      expect(res.content).toMatch(/^refused: /);
      expect(res.content).toMatch(reason);
    }
    expect(dns.calls).toEqual(["intranet.example", "mixed.example", "meta.example", "mapped.example"]);
    expect(socketConnects).toEqual([]);
  });

  test("an unresolvable name is a readable error, not a crash", async () => {
    const dns = fakeDns({});
    const res = await fetchTool("http://nowhere.example/", { resolve: dns.resolve });
    expect(res.is_error).toBe(true);
    expect(res.content).toMatch(/could not resolve nowhere\.example: ENOTFOUND/);
  });

  test.each(["file:///etc/passwd", "ftp://example.com/x", "gopher://example.com/", "data:text/plain,hi", "javascript:alert(1)"])(
    "non-http scheme %s is refused",
    async (url) => {
      const res = await fetchTool(url);
      expect(res.is_error).toBe(true);
      expect(res.content).toMatch(/only http:\/\/ and https:\/\/ URLs/);
      expect(socketConnects).toEqual([]);
    },
  );

  test("credentials in the URL are refused", async () => {
    const res = await fetchTool(`http://user:pass@127.0.0.1:${local.port}/page`, { allow: ["127.0.0.1"] });
    expect(res.is_error).toBe(true);
    expect(res.content).toMatch(/credentials/);
    expect(socketConnects).toEqual([]);
  });
});

describe("web_fetch on allow-listed hosts", () => {
  test("HTML becomes readable text with its title; scripts, styles and images are dropped; links absolute", async () => {
    const res = await fetchTool(`${local.url}/page`, { allow: ["127.0.0.1"] });
    expect(res.is_error).toBeUndefined();
    const data = res.data!;
    expect(data).toMatchObject({
      url: `${local.url}/page`,
      final_url: `${local.url}/page`,
      status: 200,
      content_type: "text/html; charset=utf-8",
      title: "Overnight & News",
    });
    const text = data.text as string;
    expect(text).toContain("POSTGRES 18 RELEASED");
    expect(text).toContain("It is faster.");
    expect(text).toContain(`Read more [${local.url}/more]`);
    expect(text).not.toMatch(/secret|color: red|cat|enable js/);
    expect(data.truncated).toBeUndefined();
    expect(connected.map((c) => c.address)).toEqual(["127.0.0.1"]);
  });

  test("JSON is returned as is; gzip is decoded", async () => {
    const json = await fetchTool(`${local.url}/json`, { allow: ["127.0.0.0/8"] });
    expect(json.data).toMatchObject({ status: 200, text: '{"hello":"world"}' });
    const gz = await fetchTool(`${local.url}/gzip`, { allow: ["127.0.0.0/8"] });
    expect(gz.data).toMatchObject({ status: 200, text: "compressed hello" });
  });

  test("an allow-listed name connects to the address that was checked, without resolving again (no rebinding)", async () => {
    // First answer loopback (allow-listed by address), every later answer a private address. A second lookup
    // between check and connect would go to 10.0.0.7; the pinned lookup never asks again.
    const dns = fakeDns({ "rebind.test": (n) => (n === 1 ? ["127.0.0.1"] : ["10.0.0.7"]) });
    const res = await fetchTool(`http://rebind.test:${local.port}/echo-host`, {
      allow: ["127.0.0.1/32"],
      resolve: dns.resolve,
    });
    expect(res.is_error).toBeUndefined();
    expect(res.data!.text).toBe(`host=rebind.test:${local.port}`);
    expect(dns.calls).toEqual(["rebind.test"]);
    expect(connected).toEqual([{ url: `http://rebind.test:${local.port}/echo-host`, host: "rebind.test", address: "127.0.0.1", port: local.port }]);
  });

  test("a redirect from an allow-listed server into a private address is refused before connecting to it", async () => {
    const dns = fakeDns({ "docs.test": ["127.0.0.1"], "internal.test": ["10.0.0.7"] });
    const allow = { allow: ["docs.test"], resolve: dns.resolve };
    for (const target of [
      `http://127.0.0.1:${local.port}/page`, // same server, but by address: not allow-listed
      "http://169.254.169.254/latest/meta-data/iam",
      "http://internal.test/admin",
      `http://[::1]:${local.port}/`,
    ]) {
      socketConnects.length = 0;
      connected.length = 0;
      const requestsBefore = local.requests.length;
      const res = await fetchTool(`http://docs.test:${local.port}/redirect?to=${encodeURIComponent(target)}`, allow);
      expect(res.is_error, target).toBe(true);
      expect(res.content).toMatch(/^refused: /);
      // Exactly one connection: the allow-listed first hop. The redirect target was never contacted.
      expect(socketConnects).toHaveLength(1);
      expect(connected.map((c) => c.host)).toEqual(["docs.test"]);
      expect(local.requests.length).toBe(requestsBefore + 1);
    }
  });

  test("redirects are followed (relative too) up to 5, re-checked each hop", async () => {
    const ok = await fetchTool(`${local.url}/redirect?to=${encodeURIComponent("/json")}`, { allow: ["127.0.0.1"] });
    expect(ok.data).toMatchObject({ url: `${local.url}/redirect?to=%2Fjson`, final_url: `${local.url}/json`, text: '{"hello":"world"}' });

    connected.length = 0;
    const loop = await fetchTool(`${local.url}/loop`, { allow: ["127.0.0.1"] });
    expect(loop.is_error).toBe(true);
    expect(loop.content).toMatch(/stopped after 5 redirects/);
    expect(connected).toHaveLength(6);
  });

  test("the byte cap stops reading and marks the result truncated", async () => {
    const res = await fetchTool(`${local.url}/big`, { allow: ["127.0.0.1"], maxBytes: 64 * 1024, maxChars: 200_000 });
    expect(res.is_error).toBeUndefined();
    expect(res.data).toMatchObject({ status: 200, truncated: true, bytes: 64 * 1024 });
    expect((res.data!.text as string).length).toBe(64 * 1024);
  });

  test("the character cap truncates the text (max_chars from the model cannot exceed the configured cap)", async () => {
    const res = await fetchTool(`${local.url}/big`, { allow: ["127.0.0.1"], maxChars: 1000 }, { max_chars: 5000 });
    expect(res.data).toMatchObject({ truncated: true });
    expect((res.data!.text as string).length).toBe(1000);
    const smaller = await fetchTool(`${local.url}/big`, { allow: ["127.0.0.1"], maxChars: 1000 }, { max_chars: 600 });
    expect((smaller.data!.text as string).length).toBe(600);
  });

  test.each(["/stall-headers", "/stall-body"])("the time cap aborts a server that stalls (%s)", async (path) => {
    const started = Date.now();
    const res = await fetchTool(`${local.url}${path}`, { allow: ["127.0.0.1"], timeoutMs: 300 });
    expect(res.is_error).toBe(true);
    expect(res.content).toMatch(/timed out after 300 ms/);
    // Bounded by the cap, not by the server: generous slack for a loaded machine, far below "forever".
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  test("the caller's signal (the agent's wall clock) cancels a fetch", async () => {
    const controller = new AbortController();
    const seen = local.requests.length;
    const pending = runToolCall("web_fetch", { url: `${local.url}/stall-headers` }, {
      ...ctx({ allow: ["127.0.0.1"], timeoutMs: 60_000 }),
      signal: controller.signal,
    });
    await local.waitForRequests(seen + 1); // the request is in flight
    controller.abort();
    const res = await pending;
    expect(res.is_error).toBe(true);
    expect(res.content).toMatch(/cancelled/);
  });

  test.each([
    ["/png", /image\/png, which is binary/],
    ["/octet", /application\/octet-stream, which is binary/],
    ["/untyped-binary", /no content type and looks binary/],
  ])("binary content is refused (%s)", async (path, message) => {
    const res = await fetchTool(`${local.url}${path}`, { allow: ["127.0.0.1"] });
    expect(res.is_error).toBe(true);
    expect(res.content).toMatch(message);
  });

  test("an HTTP error status is a normal result the model can read", async () => {
    const res = await fetchTool(`${local.url}/missing`, { allow: ["127.0.0.1"] });
    expect(res.is_error).toBeUndefined();
    expect(res.data).toMatchObject({ status: 404, text: "not found" });
  });
});

describe("web_fetch input validation", () => {
  test.each([
    [{}, /url: .*(Required|expected string)/i],
    [{ url: 42 }, /url: .*expected string/i],
    [{ url: "" }, /url: /],
    [{ url: "https://example.com", max_chars: 10 }, /max_chars: /],
  ])("malformed input %j is a readable is_error result", async (input, message) => {
    const res = await runToolCall("web_fetch", input, ctx());
    expect(res).toMatchObject({ type: "tool_result", tool_use_id: "toolu_fetch", is_error: true });
    expect(res.content).toMatch(/^Invalid input for web_fetch: /);
    expect(res.content).toMatch(message);
    expect(socketConnects).toEqual([]);
  });

  test("a relative or garbage URL is refused readably", async () => {
    const res = await runToolCall("web_fetch", { url: "/etc/passwd" }, ctx());
    expect(res.is_error).toBe(true);
    expect(res.content).toMatch(/not a valid absolute URL/);
  });
});
