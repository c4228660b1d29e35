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

  test("a sync the SDK cannot read is a JSON 400, not an empty 500", async () => {
    const res = await requireInBandSync(async () => {
      throw new SyntaxError("Unexpected token");
    }, { INNGEST_DEV: "1" })(put({}));
    expect(res.status).toBe(400);
  });
});
