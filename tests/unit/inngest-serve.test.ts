// The Inngest serve route's production guards (issue 11, finding 4): the serve origin comes from configuration,
// never from the request's Host, and in cloud mode an out-of-band (unsigned) PUT is refused before the SDK sees
// it. Before the fix the route passed every PUT to the SDK, which registered the URL built from Host.
import { Inngest } from "inngest";
import { serve } from "inngest/next";
import { describe, expect, test } from "vitest";
import { inngestCloudMode, inngestServeOrigin, refuseWebPagesInDevMode, requireInBandSync } from "../../lib/http/inngest-serve";

describe("inngestServeOrigin", () => {
  test.each([
    [{ INNGEST_SERVE_ORIGIN: "https://app.example.com/" }, "https://app.example.com"],
    [{ VERCEL_ENV: "production", VERCEL_PROJECT_PRODUCTION_URL: "nightshift.example.com", VERCEL_URL: "ns-abc.vercel.app" }, "https://nightshift.example.com"],
    [{ VERCEL_ENV: "preview", VERCEL_PROJECT_PRODUCTION_URL: "nightshift.example.com", VERCEL_URL: "ns-abc.vercel.app" }, "https://ns-abc.vercel.app"],
    [{}, undefined],
  ])("%j -> %s", (env, origin) => {
    expect(inngestServeOrigin(env)).toBe(origin);
  });
});

describe("requireInBandSync", () => {
  let calls = 0;
  const sdkPut = async () => {
    calls++;
    return new Response("{}", { status: 200 });
  };
  const put = (headers: Record<string, string>) => new Request("http://evil.example/api/inngest", { method: "PUT", headers });

  test("cloud mode: an out-of-band PUT is a JSON 403 and never reaches the SDK", async () => {
    calls = 0;
    const res = await requireInBandSync(sdkPut, {})(put({ host: "evil.example" }));
    expect(res.status).toBe(403);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("forbidden");
    expect(calls).toBe(0);
  });

  test("cloud mode: an in-band sync goes to the SDK, which verifies its signature", async () => {
    calls = 0;
    const res = await requireInBandSync(sdkPut, { INNGEST_SIGNING_KEY: "signkey-prod-00" })(put({ "x-inngest-sync-kind": "in_band" }));
    expect(res.status).toBe(200);
    expect(calls).toBe(1);
  });

  test("dev mode (INNGEST_DEV): out-of-band syncs still work", async () => {
    calls = 0;
    expect(inngestCloudMode({ INNGEST_DEV: "http://127.0.0.1:8288" })).toBe(false);
    expect(inngestCloudMode({ INNGEST_DEV: "0" })).toBe(true);
    const res = await requireInBandSync(sdkPut, { INNGEST_DEV: "http://127.0.0.1:8288" })(put({}));
    expect(res.status).toBe(200);
    expect(calls).toBe(1);
  });

  test("a sync the SDK refuses is answered in the API's error shape, without the SDK's validator output", async () => {
    // What the SDK answers an in-band sync whose body has no `url` (found by the fuzz, seed 424242).
    const sdkRefusal = async () =>
      Response.json({ code: "invalid_request", message: '[\n  {\n    "code": "invalid_type",\n    "path": [\n      "url"\n    ]\n  }\n]' }, { status: 400 });
    const res = await requireInBandSync(sdkRefusal, { INNGEST_DEV: "1" })(put({ "x-inngest-sync-kind": "in_band" }));
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe("invalid_request");
    expect(body.error.message).not.toMatch(/invalid_type|path/);
    const unsigned = await requireInBandSync(async () => Response.json({ message: "No x-inngest-signature" }, { status: 401 }), {})(put({ "x-inngest-sync-kind": "in_band" }));
    expect(unsigned.status).toBe(401);
    expect(((await unsigned.json()) as { error: { code: string } }).error.code).toBe("unauthorized");
  });

  test("a sync the SDK cannot read is a JSON 400, not an empty 500", async () => {
    const res = await requireInBandSync(async () => {
      throw new SyntaxError("Unexpected token");
    }, { INNGEST_DEV: "1" })(put({}));
    expect(res.status).toBe(400);
  });
});

describe("refuseWebPagesInDevMode: dev mode verifies no signature, so a web page must not reach the SDK", () => {
  // The real SDK in dev mode, with one function that records the data it was run with.
  const ran: unknown[] = [];
  const client = new Inngest({ id: "probe", isDev: true });
  const victim = client.createFunction({ id: "victim", triggers: [{ event: "probe/ran" }] }, async ({ event }) => {
    ran.push(event.data);
    return "done";
  });
  const { POST } = serve({ client, functions: [victim], serveOrigin: "http://127.0.0.1:3000" });
  const DEV = { INNGEST_DEV: "http://127.0.0.1:8288" };

  /** A forged call, as a page's cross-site "simple" POST sends it (text/plain: no CORS preflight). */
  const forged = (headers: Record<string, string>) => {
    const event = { name: "probe/ran", data: { task_id: "chosen-by-the-page" }, id: "e1", ts: 1 };
    return new Request("http://127.0.0.1:3000/api/inngest?fnId=probe-victim&stepId=step", {
      method: "POST",
      headers: { "content-type": "text/plain;charset=UTF-8", ...headers },
      body: JSON.stringify({
        version: 2,
        event,
        events: [event],
        steps: {},
        ctx: { run_id: "run-1", attempt: 0, disable_immediate_execution: false, use_api: false, stack: { stack: [], current: 0 } },
      }),
    });
  };
  const pageHeaders: Record<string, string>[] = [
    { origin: "https://evil.example", "sec-fetch-site": "cross-site" }, // a drive-by page
    { origin: "http://rebound.evil.example:3000", "sec-fetch-site": "same-origin" }, // DNS rebinding
    { "sec-fetch-site": "same-site" }, // no Origin (an old browser)
  ];

  test("without the guard the SDK runs the function with the page's data (the hole)", async () => {
    ran.length = 0;
    const res = await POST(forged(pageHeaders[0]!) as never, undefined as never);
    expect(res.status).toBe(200);
    expect(ran).toEqual([{ task_id: "chosen-by-the-page" }]);
  });

  test.each(pageHeaders)("with it, a request a web page sent (%j) is a JSON 403 and runs nothing", async (headers) => {
    ran.length = 0;
    const res = await refuseWebPagesInDevMode(POST, DEV)(forged(headers) as never, undefined as never);
    expect(res.status).toBe(403);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("forbidden");
    expect(ran).toEqual([]);
  });

  test("the engine's calls (no browser headers) and a typed URL still go through; cloud mode is left to signatures", async () => {
    ran.length = 0;
    const res = await refuseWebPagesInDevMode(POST, DEV)(forged({}) as never, undefined as never);
    expect(res.status).toBe(200);
    expect(ran).toHaveLength(1);
    let reached = 0;
    const sdk = async () => {
      reached++;
      return new Response("{}");
    };
    await refuseWebPagesInDevMode(sdk, DEV)(new Request("http://127.0.0.1:3000/api/inngest", { headers: { "sec-fetch-site": "none" } }));
    await refuseWebPagesInDevMode(sdk, {})(forged(pageHeaders[0]!));
    expect(reached).toBe(2);
  });
});
