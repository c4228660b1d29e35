// The Inngest serve route's production guards (issue 11, finding 4): the serve origin comes from configuration,
// never from the request's Host, and in cloud mode an out-of-band (unsigned) PUT is refused before the SDK sees
// it. Before the fix the route passed every PUT to the SDK, which registered the URL built from Host.
import { describe, expect, test } from "vitest";
import { inngestCloudMode, inngestServeOrigin, requireInBandSync } from "../../lib/http/inngest-serve";

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
