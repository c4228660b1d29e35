// The morning digest under a retried run, on the real stack: the app's morning-digest function sends the digest,
// then its answer to the engine is lost (the connection drops, as when the app dies right after the step's work),
// so the engine calls it again and the step runs a second time. Still exactly one digest: one notification row,
// one message per channel. The engine runs in classic mode here so that the lost answer is the step's only record
// (no checkpoint saved it earlier) and the retry really re-executes the step.
import type { IncomingMessage, ServerResponse } from "node:http";
import { afterAll, beforeAll, expect, test } from "vitest";
import { ManualClock } from "../../../local/engine";
import { startAppFixture, type AppFixture } from "../../support/app-fixture";
import { startCaptureServer, type CaptureServer } from "../../support/capture-server";
import { quietTick, until, type TestEngine } from "../../support/engine-harness";
import type { TestSupabase } from "../../support/supabase";

let fx: AppFixture;
let sb: TestSupabase;
let te: TestEngine;
let slack: CaptureServer;
let clock: ManualClock;
let digestCalls = 0;
let dropped = 0;

beforeAll(async () => {
  clock = new ManualClock(Date.now());
  slack = await startCaptureServer({ handler: (_req, res) => void res.writeHead(200).end("ok") });
  // The first answer of the morning-digest function is lost after the function did its work.
  const dropFirstDigestAnswer = (handler: (req: IncomingMessage, res: ServerResponse) => unknown) => (req: IncomingMessage, res: ServerResponse) => {
    if (req.method === "POST" && req.url?.includes("fnId=nightshift-morning-digest")) {
      digestCalls += 1;
      if (dropped === 0) {
        dropped += 1;
        const drop = () => {
          req.socket.destroy();
          return res;
        };
        res.writeHead = drop as typeof res.writeHead;
        res.write = drop as unknown as typeof res.write;
        res.end = drop as typeof res.end;
      }
    }
    return handler(req, res);
  };
  fx = await startAppFixture({
    clock,
    engine: { mode: "classic" },
    unset: ["TELEGRAM_BOT_TOKEN", "NOTIFY_EMAIL_TO", "RESEND_API_KEY"],
    env: {
      SLACK_WEBHOOK_URL: `${slack.url}/services/T0/B0/digestretry0123456789`,
      NIGHTSHIFT_PUBLIC_URL: "https://nightshift.example",
      // Due all day (after 00:00 UTC), so the real time the test runs at never matters; an empty night still sends.
      // (The fixture puts back the suite's NIGHTSHIFT_DIGEST_TIME=off on stop.)
      NIGHTSHIFT_TIMEZONE: "UTC",
      NIGHTSHIFT_DIGEST_TIME: "00:00",
      NIGHTSHIFT_DIGEST_EMPTY: "true",
    },
    serve: async () => {
      const { morningDigest } = await import("@/inngest/functions/morning-digest");
      const { deliverNotifications } = await import("@/inngest/functions/deliver-notifications");
      await import("@/inngest/outbox-relay"); // registers the relay that sends notify()'s recorded event
      return { functions: [morningDigest, deliverNotifications] };
    },
    wrap: dropFirstDigestAnswer as never,
  });
  ({ sb, te } = fx);
});

afterAll(async () => {
  await fx?.stop();
  await slack?.stop();
});

test("the digest step retried after its answer was lost sends exactly one digest", async () => {
  const today = new Date().toISOString().slice(0, 10);
  const runs = () => te.engine.listRuns({ function_id: "nightshift-morning-digest" });
  // The cron fires every 5 minutes of the engine's clock; move it until the first firing's run has ended.
  // The earliest run is the one whose first answer was dropped (later firings, if any, find the digest sent).
  const earliest = async () => [...(await runs())].sort((a, b) => a.created_at.localeCompare(b.created_at))[0];
  const first = await until(async () => {
    const r = await earliest();
    return r && (r.status === "completed" || r.status === "failed") ? r : null;
  }, {
    // Time moves only while the engine is quiet, so a slow machine sees the same sequence as a fast one.
    tick: quietTick(te.engine, clock, 60_000),
    timeoutMs: 90_000,
    message: "the morning-digest run did not end",
  });
  expect(first.status).toBe("completed");
  expect(dropped).toBe(1);
  expect(digestCalls).toBeGreaterThanOrEqual(2);
  // The step ran twice: the retry found the digest the lost attempt had recorded and sent nothing new.
  const detail = await te.engine.getRun(first.run_id);
  expect(detail?.output).toMatchObject({ date: today, sent: false, reason: "sent already" });

  const { data: rows } = await sb.admin.from("notifications").select("id,title").eq("dedupe_key", `digest:${today}`);
  expect(rows).toHaveLength(1);
  expect(rows![0]!.title).toContain(`Morning digest ${today}`);
  // Delivered once to Slack: wait for the delivery run to end, then count.
  await until(async () => (await te.engine.listRuns({ function_id: "nightshift-deliver-notifications" })).some((r) => r.status === "completed"), {
    tick: quietTick(te.engine, clock, 1000),
    timeoutMs: 90_000,
    message: "the digest was not delivered",
  });
  expect(slack.requests).toHaveLength(1);
  expect(JSON.stringify(slack.requests[0]!.json)).toContain(`Morning digest ${today}`);
});
