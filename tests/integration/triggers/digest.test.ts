// The morning digest on the real stack: assembled from real rows, sent exactly once however many ticks race for it,
// and delivered by the app's real deliver-notifications function (local engine) to Slack, Telegram and Resend
// capture servers. Fixed instants: the digest of 2030-06-02 at 07:00 Europe/Berlin (05:00 UTC, summer time).
import { afterAll, beforeAll, expect, test } from "vitest";
import { ManualClock } from "../../../local/engine";
import { startAppFixture, type AppFixture } from "../../support/app-fixture";
import { startCaptureServer, type CaptureServer } from "../../support/capture-server";
import { until } from "../../support/engine-harness";
import type { TestSupabase } from "../../support/supabase";

const TOKEN = "987654321:AAH_digestTelegramToken-abcdefghijklmnopq";
const CFG = { timezone: "Europe/Berlin", time: "07:00", sendEmpty: true };
const PUBLIC_URL = "https://nightshift.example";
let fx: AppFixture;
let sb: TestSupabase;
let slack: CaptureServer;
let telegram: CaptureServer;
let resend: CaptureServer;
let digest: typeof import("@/lib/digest");

beforeAll(async () => {
  slack = await startCaptureServer({ handler: (_req, res) => void res.writeHead(200).end("ok") });
  telegram = await startCaptureServer({
    handler: (_req, res) => void res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ ok: true, result: { message_id: 1 } })),
  });
  resend = await startCaptureServer();
  fx = await startAppFixture({
    clock: new ManualClock(Date.now()),
    env: {
      SLACK_WEBHOOK_URL: `${slack.url}/services/T0/B0/digestsecret0123456789`,
      TELEGRAM_BOT_TOKEN: TOKEN,
      TELEGRAM_CHAT_ID: "-100123",
      TELEGRAM_API_BASE_URL: telegram.url,
      NOTIFY_EMAIL_TO: "owner@example.com",
      RESEND_API_KEY: "re_testkey_0123456789abcdef",
      RESEND_BASE_URL: resend.url,
      NIGHTSHIFT_PUBLIC_URL: PUBLIC_URL,
    },
    serve: async () => {
      const { deliverNotifications } = await import("@/inngest/functions/deliver-notifications");
      await import("@/inngest/outbox-relay"); // registers the relay that sends notify()'s recorded event
      return { functions: [deliverNotifications] };
    },
  });
  sb = fx.sb;
  digest = await import("@/lib/digest");

  // The night: one completed task and one failed (finished 01:00 Berlin), one from the day before (outside).
  const rows: import("@/lib/db/database.types").Database["public"]["Tables"]["tasks"]["Insert"][] = [
    { agent_id: "research", prompt: "Nightly market research", status: "completed", finished_at: "2030-06-01T23:00:00Z", cost_micros: 420_000 },
    { agent_id: "outreach", prompt: "Monday outreach batch", status: "failed", finished_at: "2030-06-01T23:30:00Z", status_reason: "Claude refused the request" },
    { agent_id: "content", prompt: "Old draft", status: "completed", finished_at: "2030-05-31T12:00:00Z" },
  ];
  for (const r of rows) expect((await sb.admin.from("tasks").insert(r)).error).toBeNull();
});

afterAll(async () => {
  await fx?.stop();
  await Promise.all([slack?.stop(), telegram?.stop(), resend?.stop()]);
});

test("the digest is due after 07:00 local only, and covers the night before", async () => {
  expect(digest.dueDigestDate(CFG, new Date("2030-06-02T04:59:00Z"))).toBeNull();
  expect(digest.dueDigestDate(CFG, new Date("2030-06-02T05:00:00Z"))).toBe("2030-06-02");
  const d = await digest.assembleDigest(sb.admin, CFG, "2030-06-02", new Date("2030-06-02T05:10:00Z"));
  expect(d.window).toEqual({ from: "2030-06-01T05:00:00.000Z", to: "2030-06-02T05:00:00.000Z" });
  expect(d.finished.map((t) => [t.agent, t.status])).toEqual([["research", "completed"]]);
  expect(d.failed.map((t) => [t.agent, t.reason])).toEqual([["outreach", "Claude refused the request"]]);
  expect(d.spend.map((s) => s.agent).sort()).toEqual(["content", "outreach", "research"]);
  expect(d.empty).toBe(false);
});

test("ten ticks racing at 07:10 send exactly one digest, delivered once to Slack, Telegram and email (HTML + text)", async () => {
  const at = new Date("2030-06-02T05:10:00Z");
  const results = await Promise.all(Array.from({ length: 10 }, () => digest.sendDigestIfDue(sb.admin, CFG, PUBLIC_URL, at)));
  expect(results.filter((r) => r.sent)).toHaveLength(1);
  expect(new Set(results.map((r) => r.notification_id)).size).toBe(1);
  // A later tick the same day (or a retried step) sends nothing.
  expect(await digest.sendDigestIfDue(sb.admin, CFG, PUBLIC_URL, new Date("2030-06-02T09:00:00Z"))).toMatchObject({ sent: false, reason: "sent already" });
  const { data: rows } = await sb.admin.from("notifications").select("id,title").eq("dedupe_key", "digest:2030-06-02");
  expect(rows).toHaveLength(1);
  expect(rows![0]!.title).toBe("Morning digest 2030-06-02: 1 finished, 1 failed, 0 to review");

  await until(() => slack.requests.length >= 1 && telegram.requests.length >= 1 && resend.requests.length >= 1, { message: "digest not delivered" });
  await new Promise((r) => setTimeout(r, 300));
  expect([slack.requests.length, telegram.requests.length, resend.requests.length]).toEqual([1, 1, 1]);
  const email = resend.requests[0]!.json as { subject: string; text: string; html: string };
  expect(email.subject).toContain("Morning digest 2030-06-02");
  expect(email.text).toContain("Nightly market research");
  expect(email.html).toContain("<br>");
  expect(email.text).toContain("Spend against caps:");
});

test("an empty night sends one line, or nothing when configured off", async () => {
  const empty = await digest.assembleDigest(sb.admin, CFG, "2031-01-10", new Date("2031-01-10T07:00:00Z"));
  expect(empty.empty).toBe(true);
  expect(digest.digestText(empty, PUBLIC_URL).title).toBe("Morning digest 2031-01-10: nothing ran");
  const off = await digest.sendDigestIfDue(sb.admin, { ...CFG, sendEmpty: false }, PUBLIC_URL, new Date("2031-01-10T07:00:00Z"));
  expect(off).toMatchObject({ sent: false, reason: "empty night (NIGHTSHIFT_DIGEST_EMPTY=false)" });
});

test("NIGHTSHIFT_DIGEST_TIME=off sends nothing, and the preview still covers the night", async () => {
  const cfg = digest.digestConfig({ NIGHTSHIFT_TIMEZONE: "Europe/Berlin", NIGHTSHIFT_DIGEST_TIME: "off", NIGHTSHIFT_DIGEST_EMPTY: true });
  expect(cfg).toMatchObject({ enabled: false, time: "07:00" });
  const r = await digest.sendDigestIfDue(sb.admin, cfg, PUBLIC_URL, new Date("2032-03-03T09:00:00Z"));
  expect(r).toMatchObject({ sent: false, notification_id: null, reason: "turned off (NIGHTSHIFT_DIGEST_TIME=off)" });
  const { count } = await sb.admin.from("notifications").select("id", { count: "exact", head: true }).eq("dedupe_key", "digest:2032-03-03");
  expect(count).toBe(0);
  expect((await digest.assembleDigest(sb.admin, cfg, "2032-03-03", new Date("2032-03-03T09:00:00Z"))).date).toBe("2032-03-03");
});
