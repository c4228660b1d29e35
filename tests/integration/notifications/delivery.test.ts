// Notifications end to end: notify() records the notification and sends its event; the app's real
// deliver-notifications function runs through the real SDK over HTTP and the local engine, and sends through Slack,
// Telegram and Resend — three capture servers standing in for them. No sleeps: the engine's manual clock is moved
// forward to cross retry backoffs, and every wait polls an outcome with a deadline.
import { afterAll, afterEach, beforeAll, describe, expect, test, vi } from "vitest";
import { ManualClock } from "../../../local/engine";
import { startCaptureServer, type CaptureServer, type CapturedRequest } from "../../support/capture-server";
import { startAppFixture, type AppFixture } from "../../support/app-fixture";
import { quietTick, runReaches, until, type TestEngine } from "../../support/engine-harness";
import type { TestSupabase } from "../../support/supabase";
import { sql } from "../db/sql";

const TOKEN = "987654321:AAH_secretTelegramToken-abcdefghijklmnopq";
const SLACK_PATH = "/services/T0NIGHT/B0SHIFT/slackSecretPart0123456789";
const RESEND_KEY = "re_testkey_0123456789abcdef";
const PUBLIC_URL = "https://nightshift.example";
const FN = "nightshift-deliver-notifications";

let fx: AppFixture;
let sb: TestSupabase;
let te: TestEngine;
let clock: ManualClock;
let slack: CaptureServer;
let telegram: CaptureServer;
let resend: CaptureServer;
let notifyFn: typeof import("@/lib/notifications").notify;
let announceFn: typeof import("@/lib/notifications").announce;
let sweep: typeof import("@/lib/notifications").sweepNotifications;
const logLines: string[] = [];

const telegramOk = (req: CapturedRequest, res: import("node:http").ServerResponse, index: number) => {
  if (req.method === "POST" && /^\/bot[^/]+\/sendMessage$/.test(req.url)) {
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ ok: true, result: { message_id: 1000 + index } }));
    return;
  }
  res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ ok: false, error_code: 404, description: "Not Found" }));
};

const slackOk = (_req: CapturedRequest, res: import("node:http").ServerResponse) => void res.writeHead(200, { "content-type": "text/plain" }).end("ok");

const channelEnv = () => ({
  SLACK_WEBHOOK_URL: `${slack.url}${SLACK_PATH}`,
  TELEGRAM_BOT_TOKEN: TOKEN,
  TELEGRAM_CHAT_ID: "-100123",
  TELEGRAM_API_BASE_URL: telegram.url,
  NOTIFY_EMAIL_TO: "owner@example.com",
  RESEND_API_KEY: RESEND_KEY,
  RESEND_BASE_URL: resend.url,
  NIGHTSHIFT_EMAIL_FROM: "Nightshift <night@example.com>",
  NIGHTSHIFT_PUBLIC_URL: PUBLIC_URL,
});

beforeAll(async () => {
  slack = await startCaptureServer({ handler: slackOk });
  telegram = await startCaptureServer({ handler: telegramOk });
  resend = await startCaptureServer();
  // Every log line of the process, to prove no secret is ever logged.
  for (const level of ["log", "info", "warn", "error", "debug"] as const) {
    const original = console[level].bind(console);
    vi.spyOn(console, level).mockImplementation((...args: unknown[]) => {
      logLines.push(args.map((a) => (a instanceof Error ? `${a.message} ${String(a.cause ?? "")}` : typeof a === "string" ? a : JSON.stringify(a))).join(" "));
      if (process.env["NOTIFY_DEBUG"]) original(...args);
    });
  }
  // The app stamps rows with real time; the engine's clock starts there and moves only when a test says so.
  fx = await startAppFixture({ clock: new ManualClock(Date.now()), env: channelEnv() });
  ({ sb, te, clock } = fx);
  ({ notify: notifyFn, announce: announceFn, sweepNotifications: sweep } = await import("@/lib/notifications"));
});

afterEach(async () => {
  Object.assign(process.env, channelEnv());
  telegram.setHandler(telegramOk);
  slack.setHandler(slackOk);
  // Each channel's circuit breaker lives in this file's database: a test that failed a channel must not leave the
  // next one facing an open (or nearly open) breaker.
  delete process.env["NIGHTSHIFT_BREAKER_THRESHOLD"];
  delete process.env["NIGHTSHIFT_BREAKER_COOLDOWN_S"];
  delete process.env["NIGHTSHIFT_BREAKER_MAX_COOLDOWN_S"];
  (await import("@/lib/env")).resetEnvCache();
  await sb.admin.from("breakers").delete().in("dependency", ["slack", "telegram", "resend"]);
});

afterAll(async () => {
  vi.restoreAllMocks();
  await fx?.stop();
  await Promise.all([slack?.stop(), telegram?.stop(), resend?.stop()]);
});

const notify = (input: Parameters<typeof notifyFn>[1]) => notifyFn(sb.admin, input);

/** Requests whose body mentions `marker` (each test uses a unique title). */
const about = (server: CaptureServer, marker: string) => server.requests.filter((r) => r.body.includes(marker));

async function notification(id: string) {
  const { data } = await sb.admin.from("notifications").select("*").eq("id", id).single();
  return data!;
}
async function deliveries(id: string) {
  const { data } = await sb.admin.from("notification_deliveries").select("*").eq("notification_id", id).order("channel");
  return Object.fromEntries((data ?? []).map((d) => [d.channel, d]));
}

/** Waits until the notification's round concluded and its run(s) completed; moves the engine's clock a minute per
 * poll so retry backoffs pass. Returns the notification and its runs. */
async function concluded(id: string) {
  const n = await until(
    async () => {
      const row = await notification(id);
      return row.delivered_at || row.last_error ? row : undefined;
    },
    { tick: () => clock.advance(60_000), message: `notification ${id} did not conclude`, timeoutMs: 30_000 },
  );
  const runs = await runsFor(id);
  for (const r of runs) await runReaches(te.engine, r, "completed", { tick: () => clock.advance(60_000) });
  return { n, runs };
}

async function runsFor(id: string): Promise<string[]> {
  const out: string[] = [];
  for (const r of await te.engine.listRuns({ function_id: FN })) {
    const d = await te.engine.getRun(r.run_id);
    if ((d?.event as { data?: { notification_id?: string } })?.data?.notification_id === id) out.push(r.run_id);
  }
  return out;
}

describe("notify → deliver-notifications", () => {
  test("all three channels receive one message each, with the link; the same key notified twice is still one message each", async () => {
    const title = "Draft <b>&</b> waits [t1]";
    const first = await notify({
      kind: "approval_requested",
      dedupeKey: "approval_requested:t1",
      title,
      body: "The content agent wrote tonight's post. 2 < 3 & \"quotes\".",
      link: "/review",
    });
    const again = await notify({ kind: "approval_requested", dedupeKey: "approval_requested:t1", title: "ignored [t1]", body: "ignored" });
    expect(first).toMatchObject({ created: true, announced: true });
    expect(again).toMatchObject({ notificationId: first.notificationId, created: false });
    // The repeat's event carried the same id: the outbox recorded it once (and the engine would drop it), so one run.
    const { n, runs } = await concluded(first.notificationId);
    expect(runs).toHaveLength(1);
    expect(n.delivered_at).not.toBeNull();
    expect(n.last_error).toBeNull();
    expect(n.link).toBe("/review");

    const link = `${PUBLIC_URL}/review`;
    const [s] = about(slack, "[t1]");
    const [t] = about(telegram, "[t1]");
    const [e] = about(resend, "[t1]");
    expect(about(slack, "[t1]")).toHaveLength(1);
    expect(about(telegram, "[t1]")).toHaveLength(1);
    expect(about(resend, "[t1]")).toHaveLength(1);

    expect(s!.url).toBe(SLACK_PATH);
    const sj = s!.json as { text: string; blocks: { text?: { text: string } }[] };
    expect(sj.text).toContain(link);
    expect(sj.text).toContain("Draft &lt;b&gt;&amp;&lt;/b&gt; waits");
    expect(JSON.stringify(sj.blocks)).toContain(link);

    expect(t!.url).toBe(`/bot${TOKEN}/sendMessage`);
    const tj = t!.json as { chat_id: string; text: string; parse_mode: string; disable_web_page_preview: boolean };
    expect(tj).toMatchObject({ chat_id: "-100123", parse_mode: "HTML", disable_web_page_preview: true });
    expect(tj.text).toContain("<b>Draft &lt;b&gt;&amp;&lt;/b&gt; waits [t1]</b>");
    expect(tj.text).toContain("2 &lt; 3 &amp; &quot;quotes&quot;");
    expect(tj.text).toContain(`<a href="${link}">${link}</a>`);

    expect(e!.url).toBe("/emails");
    expect(e!.headers["authorization"]).toBe(`Bearer ${RESEND_KEY}`);
    expect(e!.headers["idempotency-key"]).toBe(`notification/${first.notificationId}/email`);
    const ej = e!.json as { from: string; to: string[]; subject: string; text: string; html: string };
    expect(ej).toMatchObject({ from: "Nightshift <night@example.com>", to: ["owner@example.com"], subject: `Nightshift: ${title}` });
    expect(ej.text).toContain(link);
    expect(ej.html).toContain(`href="${link}"`);

    const d = await deliveries(first.notificationId);
    expect(Object.keys(d)).toEqual(["email", "slack", "telegram"]);
    for (const row of Object.values(d)) expect(row).toMatchObject({ status: "sent", attempts: 1, last_error: null });
    expect(d["telegram"]!.provider_id).toMatch(/^\d+$/);
    expect(d["email"]!.provider_id).toMatch(/^email_/);

    // Once delivered, a third notify() with the key sends nothing at all.
    const third = await notify({ kind: "approval_requested", dedupeKey: "approval_requested:t1", title: "ignored [t1]", body: "x" });
    expect(third).toMatchObject({ created: false, announced: false });
    expect(await runsFor(first.notificationId)).toHaveLength(1);
    expect(about(slack, "[t1]")).toHaveLength(1);
  });

  test("a channel that fails once is retried and delivers once; one that keeps failing is recorded failed, redacted, while the others deliver", async () => {
    slack.failNext(1, 500);
    // Telegram refuses for good, and its error echoes the request URL — with the token in it.
    telegram.setHandler((req, res) =>
      void res
        .writeHead(400, { "content-type": "application/json" })
        .end(JSON.stringify({ ok: false, error_code: 400, description: `Bad Request: chat not found (POST ${telegram.url}${req.url})` })),
    );
    const r = await notify({ kind: "task_finished", dedupeKey: "task_finished:t2", title: "Research finished [t2]", body: "Done." });
    expect(r).toMatchObject({ created: true, announced: true });

    const { n, runs } = await concluded(r.notificationId);
    expect(runs).toHaveLength(1);
    expect(n.delivered_at).not.toBeNull(); // Slack and email went out
    expect(n.last_error).toBeNull();

    // Slack: the 500, then the retry that delivered. One message arrived.
    expect(about(slack, "[t2]")).toHaveLength(2);
    expect(about(resend, "[t2]")).toHaveLength(1);
    expect(about(telegram, "[t2]")).toHaveLength(1); // a 400 is not retried

    const d = await deliveries(r.notificationId);
    expect(d["slack"]).toMatchObject({ status: "sent", attempts: 2, last_error: null });
    expect(d["email"]).toMatchObject({ status: "sent", attempts: 1 });
    expect(d["telegram"]).toMatchObject({ status: "failed", response_status: 400 });
    expect(d["telegram"]!.last_error).toContain("Telegram answered 400: Bad Request: chat not found");
    expect(d["telegram"]!.last_error).toContain("[redacted]");
    expect(d["telegram"]!.last_error).not.toContain(TOKEN);
    expect(d["telegram"]!.last_error).not.toContain(TOKEN.split(":")[1]);

    const run = await te.engine.getRun(runs[0]!);
    expect(run!.output).toMatchObject({ channels: { slack: "sent", telegram: "failed", email: "sent" } });
  });

  test("a channel that stays unreachable gives up after its retries; when every channel fails, last_error says why", async () => {
    // Five failures in a row would open each channel's breaker (the next test): here the threshold is above the
    // retries, so the ordinary retries are what ends it.
    process.env["NIGHTSHIFT_BREAKER_THRESHOLD"] = "6";
    (await import("@/lib/env")).resetEnvCache();
    // Telegram's API refuses connections (a closed port); Slack and Resend answer 503 every time.
    const closed = await startCaptureServer();
    const closedUrl = closed.url;
    await closed.stop();
    process.env["TELEGRAM_API_BASE_URL"] = closedUrl;
    slack.failNext(5, 503);
    resend.failNext(5, 503);

    const r = await notify({ kind: "task_failed", dedupeKey: "task_failed:t3", title: "Outreach failed [t3]", body: "It broke." });
    const { n, runs } = await concluded(r.notificationId);
    expect(runs).toHaveLength(1);
    expect(n.delivered_at).toBeNull();
    expect(n.last_error).toMatch(/email: Resend answered 503.*gave up after 5 attempts/);
    expect(n.last_error).toMatch(/slack: Slack answered 503/);
    expect(n.last_error).toMatch(/telegram: Telegram unreachable: .*gave up after 5 attempts/);

    expect(about(slack, "[t3]")).toHaveLength(5);
    expect(about(resend, "[t3]")).toHaveLength(5);
    const d = await deliveries(r.notificationId);
    for (const c of ["slack", "telegram", "email"]) expect(d[c]).toMatchObject({ status: "failed", attempts: 5 });
    // The run itself completed: a failed channel never fails anything.
    expect((await te.engine.getRun(runs[0]!))!.status).toBe("completed");
  });

  test("Telegram's 429 retry_after is honoured and the message goes out once", async () => {
    let calls = 0;
    telegram.setHandler((req, res, index) => {
      if (++calls === 1) {
        res
          .writeHead(429, { "content-type": "application/json" })
          .end(JSON.stringify({ ok: false, error_code: 429, description: "Too Many Requests: retry after 7", parameters: { retry_after: 7 } }));
        return;
      }
      telegramOk(req, res, index);
    });
    const r = await notify({ kind: "report_ready", dedupeKey: "report_ready:t4", title: "Report ready [t4]", body: "Read it." });
    const { runs } = await concluded(r.notificationId);
    expect(about(telegram, "[t4]")).toHaveLength(2);
    const d = await deliveries(r.notificationId);
    expect(d["telegram"]).toMatchObject({ status: "sent", attempts: 2 });
    // The engine scheduled the retry at the provider's 7 s, not its own 15 s+ backoff.
    const run = await te.engine.getRun(runs[0]!);
    const errored = run!.history.find((h) => h.type === "step.errored");
    const detail = errored!.detail as { retry_at: string };
    expect(Date.parse(detail.retry_at) - Date.parse(errored!.at)).toBe(7000);
  });

  test("the Telegram token and the other secrets never appear in a stored error, the engine's records, or a log line", async () => {
    const dump = async (url: string, query: string) => (await sql<{ t: string }>(url, query)).map((r) => r.t).join("\n");
    const app = await dump(
      sb.databaseUrl,
      `select row_to_json(d)::text as t from public.notification_deliveries d
       union all select row_to_json(n)::text from public.notifications n`,
    );
    const engine = await dump(
      te.db.url,
      `select row_to_json(h)::text as t from inngest_local.history h
       union all select row_to_json(m)::text from inngest_local.memos m
       union all select row_to_json(r)::text from inngest_local.runs r`,
    );
    expect(app).toContain("[redacted]"); // the telegram error of the test above
    expect(engine).toContain("will be retried"); // the engine recorded step errors...
    for (const secret of [TOKEN, TOKEN.split(":")[1]!, SLACK_PATH, SLACK_PATH.split("/").pop()!, RESEND_KEY]) {
      expect(app).not.toContain(secret);
      expect(engine).not.toContain(secret); // ...and none of them carries a secret
      for (const line of logLines) expect(line).not.toContain(secret);
    }
    expect(logLines.some((l) => l.includes("[notifications]"))).toBe(true);
  });

  test("no channel configured: the notification is recorded and concluded with the reason, and no delivery run starts", async () => {
    for (const k of ["SLACK_WEBHOOK_URL", "TELEGRAM_BOT_TOKEN", "TELEGRAM_CHAT_ID", "NOTIFY_EMAIL_TO"]) delete process.env[k];
    const before = slack.requests.length + telegram.requests.length + resend.requests.length;
    const r = await notify({ kind: "task_finished", dedupeKey: "task_finished:t6", title: "Quiet night [t6]", body: "Done." });
    expect(r).toMatchObject({ created: true, announced: false });
    const n = await notification(r.notificationId);
    expect(n.last_error).toBe("no channel configured");
    expect(n.delivered_at).toBeNull();
    expect(await deliveries(r.notificationId)).toEqual({});
    expect(await runsFor(r.notificationId)).toEqual([]);
    // A repeat changes nothing and announces nothing.
    expect(await notify({ kind: "task_finished", dedupeKey: "task_finished:t6", title: "again", body: "again" })).toMatchObject({
      created: false,
      announced: false,
    });
    expect(slack.requests.length + telegram.requests.length + resend.requests.length).toBe(before);
  });

  test("a half-configured channel is recorded failed with the reason; the configured ones deliver", async () => {
    delete process.env["TELEGRAM_CHAT_ID"];
    const r = await notify({ kind: "task_finished", dedupeKey: "task_finished:t7", title: "Half configured [t7]", body: "Done." });
    const { n } = await concluded(r.notificationId);
    expect(n.delivered_at).not.toBeNull();
    const d = await deliveries(r.notificationId);
    expect(d["telegram"]).toMatchObject({ status: "failed" });
    expect(d["telegram"]!.last_error).toContain("TELEGRAM_BOT_TOKEN is set but TELEGRAM_CHAT_ID is not");
    expect(d["slack"]).toMatchObject({ status: "sent" });
    expect(about(telegram, "[t7]")).toHaveLength(0);
  });

  test("an event API that is down loses nothing: the event stays in the outbox and is delivered when the relay next runs", async () => {
    const { inngest } = await import("@/inngest/client");
    const { relayOutbox } = await import("@/inngest/outbox-relay");
    const send = vi.spyOn(inngest, "send").mockRejectedValue(new Error("event API unreachable"));
    let id: string;
    try {
      const r = await notify({ kind: "report_ready", dedupeKey: "report_ready:t8", title: "Report [t8]", body: "Ready." });
      expect(r).toMatchObject({ created: true, announced: true });
      id = r.notificationId;
      const { notificationEventId } = await import("@/lib/notifications");
      const eventId = notificationEventId("report_ready:t8");
      await until(async () => (await sb.admin.from("outbox").select("last_error").eq("event_id", eventId).single()).data?.last_error, {
        message: "the relay never tried",
      });
      expect(await runsFor(id)).toHaveLength(0);
      // Back up; the backoff has passed: the next relay pass (the sweeper's every minute) delivers it.
      send.mockRestore();
      await sb.admin.from("outbox").update({ available_at: new Date(0).toISOString() }).eq("event_id", eventId);
      await relayOutbox({ db: sb.admin });
    } finally {
      send.mockRestore();
    }
    const { n } = await concluded(id);
    expect(n.delivered_at).not.toBeNull();
    expect(about(slack, "[t8]")).toHaveLength(1);
    expect(about(telegram, "[t8]")).toHaveLength(1);
    expect(about(resend, "[t8]")).toHaveLength(1);
  });

  test("a notification recorded without its event (the process died in between) is announced by the sweeper", async () => {
    const { recordNotification } = await import("@/lib/notifications/store");
    const row = await recordNotification(sb.admin, { kind: "report_ready", dedupeKey: "report_ready:t9", title: "Report [t9]", body: "Ready." });
    expect(await runsFor(row.id)).toHaveLength(0);
    // Too young to sweep: nothing happens.
    expect(await sweep(sb.admin)).toEqual({ claimed: 0, announced: 0 });
    // 16 minutes later it is swept (with a new event id: the original one would be dropped for 24 h).
    const later = new Date(Date.now() + 16 * 60_000);
    expect(await sweep(sb.admin, { now: later })).toEqual({ claimed: 1, announced: 1 });
    expect(await sweep(sb.admin, { now: later })).toEqual({ claimed: 0, announced: 0 }); // pushed back
    const { n } = await concluded(row.id);
    expect(n.delivered_at).not.toBeNull();
    expect(about(slack, "[t9]")).toHaveLength(1);
  });

  test("announce() delivers a notification recorded elsewhere: the budget notice, linked to the dashboard", async () => {
    const { noteBudgetExhausted } = await import("@/lib/budget");
    const day = "2031-02-03";
    expect(await noteBudgetExhausted(sb.admin, { agentId: "outreach", taskId: null, windowStart: day })).toBe(true);
    expect(await announceFn(sb.admin, `budget_exhausted:outreach:${day}`)).toBe(true);
    const { data } = await sb.admin.from("notifications").select("id").eq("dedupe_key", `budget_exhausted:outreach:${day}`).single();
    const { n } = await concluded(data!.id);
    expect(n.delivered_at).not.toBeNull();
    const [t] = about(telegram, "reached its daily budget").filter((q) => q.body.includes(day));
    expect((t!.json as { text: string }).text).toContain(`<a href="${PUBLIC_URL}/">`);
    expect(await announceFn(sb.admin, "budget_exhausted:nobody:2031-01-01")).toBe(false);
  });

  test("invalid arguments are a caller's bug and throw; nothing is recorded", async () => {
    await expect(notify({ kind: "Bad Kind", dedupeKey: "x", title: "t", body: "b" })).rejects.toThrow(/kind/);
    await expect(notify({ kind: "task_finished", dedupeKey: "", title: "t", body: "b" })).rejects.toThrow(/dedupeKey/);
    await expect(notify({ kind: "task_finished", dedupeKey: "k", title: "t", body: "b", link: "javascript:alert(1)" })).rejects.toThrow(/link/);
  });

  // Last in the file: its notices of the breaker are delivered late by design, and the sweeper test above counts
  // every unconcluded notification.
  test("a channel that stays down opens its breaker: its notices wait instead of failing, go out once after it closes, and the operator hears once each way", async () => {
    let slackDown = true;
    slack.setHandler((req, res) => (slackDown ? void res.writeHead(503, { "content-type": "text/plain" }).end("down") : slackOk(req, res)));
    // The breaker stamps its probe time with the app's clock (real time), the sleeps run on the engine's, which this
    // file's earlier tests and the five attempts' backoffs have moved ahead of real time (by more than an hour in a
    // CI run): with a shorter cool-down a waiting delivery woke at once and probed while this test still expected
    // the breaker open. A cool-down of that lead plus three hours (the backoffs add to it; the maximum is raised with it: it caps the cool-down)
    // keeps it open until the test moves the engine's clock past it, in big steps, once Slack is back.
    const cooldownS = Math.min(86_400, Math.ceil(Math.max(0, clock.now() - Date.now()) / 1000) + 10_800);
    process.env["NIGHTSHIFT_BREAKER_COOLDOWN_S"] = String(cooldownS);
    process.env["NIGHTSHIFT_BREAKER_MAX_COOLDOWN_S"] = String(cooldownS);
    (await import("@/lib/env")).resetEnvCache();
    const tick = quietTick(te.engine, clock, 10_000);
    const bigTick = quietTick(te.engine, clock, Math.ceil(cooldownS / 8) * 1000);
    const first = await notify({ kind: "task_failed", dedupeKey: "task_failed:tb1", title: "Outage one [tb1]", body: "Slack is down." });

    // Five failed attempts open Slack's breaker; the fifth does not fail the delivery, it waits for the probe.
    const waiting = await until(async () => {
      const d = (await deliveries(first.notificationId))["slack"];
      return d?.status === "retrying" && /circuit breaker open/.test(d.last_error ?? "") ? d : undefined;
    }, { tick, timeoutMs: 60_000, message: "slack's delivery never waited for its breaker" });
    expect(waiting.last_error).toMatch(/^Slack answered 503.*waiting for slack, which is down/);
    expect((await notification(first.notificationId)).last_error).toBeNull(); // not failed, not concluded
    const { data: breaker } = await sb.admin.from("breakers").select("state,consecutive_failures").eq("dependency", "slack").single();
    expect(breaker).toMatchObject({ state: "open", consecutive_failures: 5 });
    expect(about(slack, "[tb1]")).toHaveLength(5);
    expect(about(resend, "[tb1]")).toHaveLength(1); // the other channels are not held up

    // While it is open a new notice does not call Slack at all: it waits too.
    const second = await notify({ kind: "task_failed", dedupeKey: "task_failed:tb2", title: "Outage two [tb2]", body: "Still down." });
    await until(async () => (await deliveries(second.notificationId))["slack"]?.status === "retrying" && about(telegram, "[tb2]").length === 1, { timeoutMs: 30_000 });
    expect(about(slack, "[tb2]")).toHaveLength(0);

    // Slack is back: after the cool-down one probe goes out, closes the breaker, and every waiting notice is sent once.
    slackDown = false;
    const before = about(slack, "[tb1]").length;
    await until(async () => {
      const [a, b] = await Promise.all([deliveries(first.notificationId), deliveries(second.notificationId)]);
      return a["slack"]?.status === "sent" && b["slack"]?.status === "sent";
    }, { tick: bigTick, timeoutMs: 60_000, message: "the waiting notices were not sent after the recovery" });
    expect(about(slack, "[tb1]")).toHaveLength(before + 1);
    expect(about(slack, "[tb2]")).toHaveLength(1);
    for (const id of [first.notificationId, second.notificationId]) {
      await until(async () => (await notification(id)).delivered_at, { tick: bigTick, timeoutMs: 30_000 });
    }
    const { data: closed } = await sb.admin.from("breakers").select("state").eq("dependency", "slack").single();
    expect(closed!.state).toBe("closed");

    // The operator heard once that Slack went down and once that it came back — and the first notice, which Slack
    // itself could not carry while it was down, reached Slack too once it closed.
    const notices = async (kind: string) => (await sb.admin.from("notifications").select("id,dedupe_key").eq("kind", kind).like("dedupe_key", "breaker_%:slack:%")).data!;
    expect(await notices("dependency_down")).toHaveLength(1);
    expect(await notices("dependency_recovered")).toHaveLength(1);
    await until(async () => about(slack, "slack is down: its circuit breaker opened").length === 1, { tick: bigTick, timeoutMs: 60_000, message: "the breaker's own notice never reached Slack" });
    expect(about(resend, "slack is down: its circuit breaker opened")).toHaveLength(1);
  }, 180_000); // its waits on the engine's clock have their own deadlines; a loaded CI machine needs more than 60 s
});
