// inngest/client-headers.ts: the client's headers are computed once, and are what the SDK's own getter computes.
import { Inngest } from "inngest";
import { afterEach, describe, expect, it } from "vitest";
import { withStableHeaders } from "@/inngest/client-headers";

const saved = { INNGEST_ENV: process.env["INNGEST_ENV"], VERCEL: process.env["VERCEL"] };

afterEach(() => {
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

describe("withStableHeaders", () => {
  it("gives the SDK's own headers, including the environment read at construction", () => {
    process.env["INNGEST_ENV"] = "branch-x";
    process.env["VERCEL"] = "1";
    const plain = new Inngest({ id: "h", isDev: true });
    const stable = withStableHeaders(new Inngest({ id: "h", isDev: true }));
    expect(stable.headers).toEqual(plain.headers);
    expect(stable.headers["x-inngest-env"]).toBe("branch-x");
    expect(stable.headers["x-inngest-platform"]).toBe("vercel");
    expect(stable.env).toBe("branch-x");
    // What the API client sends with every request (checkpoints, event sends).
    expect((stable as unknown as { inngestApi: { apiHeaders: Record<string, string> } }).inngestApi.apiHeaders).toEqual(
      (plain as unknown as { inngestApi: { apiHeaders: Record<string, string> } }).inngestApi.apiHeaders,
    );
  });

  it("does not read the process environment again, and hands out a copy each time", () => {
    delete process.env["INNGEST_ENV"];
    const stable = withStableHeaders(new Inngest({ id: "h", isDev: true }));
    const first = stable.headers;
    first["x-mutated"] = "1";
    expect(stable.headers["x-mutated"]).toBeUndefined();
    // A variable first set after the client was built: the SDK's getter would pick it up, the stable one does not
    // (documented in client-headers.ts: never done by the app).
    process.env["INNGEST_ENV"] = "late";
    expect(stable.headers["x-inngest-env"]).toBeUndefined();
  });

  it("leaves a client without the getter as it is", () => {
    const obj = { a: 1 };
    expect(withStableHeaders(obj)).toBe(obj);
    expect(Object.getOwnPropertyDescriptor(obj, "headers")).toBeUndefined();
  });
});
