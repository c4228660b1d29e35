// The shared guarded HTTP client (lib/net/guarded-fetch.ts) against real local servers, with an injected resolver
// that "rebinds": its first answer is the allowed address, every later answer a private one. The client must
// resolve once and connect to the checked address. Before this client existed, callbacks resolved to check and
// then let fetch() resolve again — this file's webhook delivery test fails on that code (the second lookup is what it
// counts, and the private server is where the request went).
import { createServer, type Server } from "node:http";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { attemptDelivery, openDelivery } from "../../../lib/webhooks/outbound";
import { GuardedFetchError, guardedFetch, type ResolvedAddress } from "../../../lib/net/guarded-fetch";
import { startCaptureServer, type CaptureServer } from "../../support/capture-server";
import { createTestSupabase, type TestSupabase } from "../../support/supabase";

let checked: CaptureServer; // 127.0.0.1: stands in for the public, allow-listed address
// 127.0.0.2 on the same port: the "internal" service a rebinding would reach. It counts what reaches it.
let internal: { server: Server; requests: number };
let sb: TestSupabase;

beforeAll(async () => {
  checked = await startCaptureServer({
    handler: (req, res) => {
      if (req.url === "/hop") res.writeHead(302, { location: `http://rebind.test:${checked.port}/ok` }).end();
      else if (req.url === "/to-private") res.writeHead(302, { location: `http://127.0.0.9:${checked.port}/x` }).end();
      else res.writeHead(200, { "content-type": "text/plain" }).end("checked");
    },
  });
  const server = createServer((_req, res) => {
    internal.requests++;
    res.writeHead(200).end("internal");
  });
  internal = { server, requests: 0 };
  await new Promise<void>((resolve, reject) => server.once("error", reject).listen(checked.port, "127.0.0.2", resolve));
  sb = await createTestSupabase();
  // Deliveries read the app's configuration (the signing secret): point it at this test's stack.
  Object.assign(process.env, { SUPABASE_URL: sb.supabaseUrl, SUPABASE_SECRET_KEY: sb.secretKey, ANTHROPIC_BASE_URL: "http://127.0.0.1:9" });
  (await import("../../../lib/env")).resetEnvCache();
}, 60_000);
afterAll(async () => {
  await checked?.stop();
  await new Promise((r) => internal?.server.close(r));
  await sb?.stop();
});

/** First answer: the allowed address; every later one: the internal address. Counts its calls. */
function rebinding() {
  let calls = 0;
  const resolve = async (_host: string): Promise<ResolvedAddress[]> => {
    calls++;
    return [{ address: calls === 1 ? "127.0.0.1" : "127.0.0.2", family: 4 }];
  };
  return { resolve, calls: () => calls };
}

// Only 127.0.0.1 counts as "public" here: 127.0.0.2 stays refused like any loopback address.
const allow = ["127.0.0.1"];

describe("guardedFetch", () => {
  test("resolves once and connects to the address it checked, even when DNS rebinds", async () => {
    const dns = rebinding();
    const connects: string[] = [];
    const before = internal.requests;
    const res = await guardedFetch(`http://rebind.test:${checked.port}/ok`, {
      allow,
      resolve: dns.resolve,
      onConnect: (c) => connects.push(c.address),
    });
    res.body.destroy();
    expect(res.status).toBe(200);
    expect(res.address).toBe("127.0.0.1");
    expect(dns.calls()).toBe(1);
    expect(connects).toEqual(["127.0.0.1"]);
    expect(internal.requests).toBe(before);
  });

  test("a redirect is a new URL and is checked again: the rebound answer is refused", async () => {
    const dns = rebinding();
    const err = await guardedFetch(`http://127.0.0.1:${checked.port}/hop`, { allow, resolve: dns.resolve, maxRedirects: 3 }).then(
      () => null,
      (e: unknown) => e,
    );
    // hop 1 is a literal (no lookup); hop 2 resolves rebind.test -> 127.0.0.1 (first answer) and succeeds.
    expect(err).toBeNull();
    const dns2 = rebinding();
    await dns2.resolve("rebind.test"); // someone else's lookup came first: the next answer is the internal one
    const refused = await guardedFetch(`http://127.0.0.1:${checked.port}/hop`, { allow, resolve: dns2.resolve, maxRedirects: 3 }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(refused).toBeInstanceOf(GuardedFetchError);
    expect((refused as GuardedFetchError).kind).toBe("refused");
    expect((refused as Error).message).toMatch(/loopback.*rebind\.test resolves to 127\.0\.0\.2/);
  });

  test("a redirect to a private literal is refused; an unfollowed redirect is handed back", async () => {
    await expect(guardedFetch(`http://127.0.0.1:${checked.port}/to-private`, { allow, maxRedirects: 2 })).rejects.toMatchObject({
      kind: "refused",
    });
    const manual = await guardedFetch(`http://127.0.0.1:${checked.port}/to-private`, { allow });
    manual.body.destroy();
    expect(manual.status).toBe(302);
  });

  test.each([
    ["http://169.254.169.254/latest/meta-data/", /cloud metadata/],
    ["http://[::ffff:127.0.0.1]/", /IPv4-mapped loopback/],
    ["http://10.0.0.1/", /private/],
    ["file:///etc/passwd", /only http/],
    ["http://user:pw@example.com/", /credentials/],
  ])("%s is refused before any connection", async (url, reason) => {
    const connects: string[] = [];
    const err = (await guardedFetch(url, { onConnect: (c) => connects.push(c.address) }).catch((e: unknown) => e)) as Error;
    expect(err).toBeInstanceOf(GuardedFetchError);
    expect(err.message).toMatch(reason);
    expect(connects).toEqual([]);
  });

  test("sends the method, headers and body it was given", async () => {
    const res = await guardedFetch(`http://127.0.0.1:${checked.port}/post`, {
      method: "POST",
      allow,
      headers: { "content-type": "application/json", authorization: "Bearer x" },
      body: '{"a":1}',
    });
    res.body.destroy();
    const got = checked.requests.at(-1)!;
    expect(got).toMatchObject({ method: "POST", url: "/post", body: '{"a":1}' });
    expect(got.headers.authorization).toBe("Bearer x");
  });
});

describe("allow-list entries scoped to a port", () => {
  test("`127.0.0.1:<port>` reaches that port only; the box's other local services stay refused", async () => {
    const scoped = [`127.0.0.1:${checked.port}`];
    const ok = await guardedFetch(new URL(`http://127.0.0.1:${checked.port}/page`), { allow: scoped });
    expect(ok.status).toBe(200);
    ok.body.destroy();
    const other = checked.port === 65535 ? checked.port - 1 : checked.port + 1;
    const refused = await guardedFetch(new URL(`http://127.0.0.1:${other}/v0/runs`), { allow: scoped }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(GuardedFetchError);
    expect((refused as GuardedFetchError).kind).toBe("refused");
  });
});

/** A delivery (as a task callback opens one) to `url`; returns its id. */
async function delivery(taskId: string, url: string): Promise<string> {
  const d = await openDelivery(sb.admin, { messageId: `msg_net_${taskId}`, taskId, kind: "callback", eventType: "task.finished", url, payload: { status: "completed" } });
  return d.id;
}

describe("webhook deliveries through the guarded client", () => {
  test("a callback host that rebinds to an internal address after the check still reaches only the checked one", async () => {
    const { data, error } = await sb.admin.from("tasks").insert({ agent_id: "outreach", prompt: "rebind test" }).select("id").single();
    expect(error).toBeNull();
    const dns = rebinding();
    const before = { checked: checked.requests.length, internal: internal.requests };
    const prev = process.env.NIGHTSHIFT_FETCH_ALLOW;
    process.env.NIGHTSHIFT_FETCH_ALLOW = allow.join(",");
    try {
      const id = await delivery(data!.id, `http://rebind.test:${checked.port}/hook`);
      const result = await attemptDelivery(sb.admin, id, 1, { net: { resolve: dns.resolve } });
      expect(result).toMatchObject({ outcome: "delivered", status_code: 200 });
    } finally {
      if (prev === undefined) delete process.env.NIGHTSHIFT_FETCH_ALLOW;
      else process.env.NIGHTSHIFT_FETCH_ALLOW = prev;
    }
    expect(dns.calls()).toBe(1);
    expect(checked.requests.length).toBe(before.checked + 1);
    expect(checked.requests.at(-1)).toMatchObject({ method: "POST", url: "/hook" });
    expect(internal.requests).toBe(before.internal);
  });

  test("a callback to a private address is recorded as refused, not retried", async () => {
    const { data } = await sb.admin.from("tasks").insert({ agent_id: "outreach", prompt: "private cb" }).select("id").single();
    const id = await delivery(data!.id, `http://127.0.0.2:${checked.port}/hook`);
    const result = await attemptDelivery(sb.admin, id, 1);
    expect(result).toMatchObject({ outcome: "final", status_code: null });
    expect(result.error).toMatch(/loopback/);
    expect(internal.requests).toBe(0);
  });
});
