// web_fetch's last good copy, against a real local HTTP server and the real database: a page read once is served from
// the cache, with its date, when the host later answers 5xx or stops answering; repeated outages open the host's
// breaker, after which the host is not called at all; a page never read fails as before.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { runToolCall } from "@/lib/agents/tools";
import { loadToolConfig } from "@/lib/agents/tools/config";
import { createTestSupabase, type TestSupabase } from "../../support/supabase";

let sb: TestSupabase;
let server: Server;
let base: string;
let mode: "ok" | "503" | "reset" = "ok";
let hits = 0;

beforeAll(async () => {
  sb = await createTestSupabase();
  Object.assign(process.env, { SUPABASE_URL: sb.supabaseUrl, SUPABASE_SECRET_KEY: sb.secretKey, ANTHROPIC_BASE_URL: "http://127.0.0.1:9" });
  server = createServer((req, res) => {
    hits++;
    if (mode === "reset") return req.socket.destroy();
    if (mode === "503") {
      res.writeHead(503, { "content-type": "text/plain" });
      return res.end("Service Unavailable");
    }
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end(`<html><head><title>Night notes</title></head><body><p>Checkpoints survive crashes (${req.url}).</p></body></html>`);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise((r) => server?.close(r));
  await sb?.stop();
});

const fetchPage = (path: string) =>
  runToolCall("web_fetch", { url: `${base}${path}` }, {
    db: sb.admin,
    taskId: "00000000-0000-4000-8000-000000000001",
    toolUseId: "toolu_cache",
    config: loadToolConfig({ NIGHTSHIFT_FETCH_ALLOW: "127.0.0.1" }),
  });

describe("web_fetch's last good copy", () => {
  test("a 5xx or a dropped connection returns the cached copy with its date; an open breaker skips the host", async () => {
    mode = "ok";
    const live = await fetchPage("/notes");
    expect(live.is_error).toBeFalsy();
    const liveBody = JSON.parse(live.content as string);
    expect(liveBody.text).toContain("Checkpoints survive crashes (/notes).");
    expect(liveBody.cached).toBeUndefined();

    mode = "503";
    const on503 = JSON.parse((await fetchPage("/notes")).content as string);
    expect(on503).toMatchObject({ cached: true, status: 200, title: "Night notes" });
    expect(on503.text).toContain("Checkpoints survive crashes (/notes).");
    expect(on503.note).toMatch(/^The live fetch failed \(127\.0\.0\.1:\d+ answered 503\); this is Nightshift's last good copy of the page, fetched \d{4}-/);

    mode = "reset";
    const onReset = JSON.parse((await fetchPage("/notes")).content as string);
    expect(onReset).toMatchObject({ cached: true });
    expect(onReset.note).toContain("fetch of");

    // A page never read has no copy: the failure is the tool's error, as before.
    const never = await fetchPage("/never-read");
    expect(never.is_error).toBe(true);

    // By now the host failed 5 times in a row: its breaker is open and the host is not called at all.
    for (let i = 0; i < 3; i++) await fetchPage("/never-read");
    const { data: b } = await sb.admin.from("breakers").select("state").like("dependency", "web_fetch:127.0.0.1:%").single();
    expect(b!.state).toBe("open");
    const before = hits;
    const skipped = JSON.parse((await fetchPage("/notes")).content as string);
    expect(hits).toBe(before);
    expect(skipped.note).toMatch(/is down \(its circuit breaker is open until/);
  });
});
