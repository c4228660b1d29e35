// Message text, escaping, links, redaction and configuration: pure functions, no servers.
import { describe, expect, test } from "vitest";
import { loadNotifyConfig, enabledChannels } from "@/lib/notifications/config";
import { defaultLink, emailMessage, resolveLink, slackMessage, telegramMessage } from "@/lib/notifications/format";
import { describeError, redact } from "@/lib/notifications/redact";
import { parseRetryAfter } from "@/lib/notifications/channels";

const n = (over: Partial<Parameters<typeof slackMessage>[0]> = {}) => ({
  id: "11111111-1111-4111-8111-111111111111",
  kind: "task_finished",
  title: "Research <done> & dusted",
  body: 'Found 3 sources; 1 < 2 & "ok".',
  link: null,
  task_id: "22222222-2222-4222-8222-222222222222",
  ...over,
});

describe("links", () => {
  test("default per kind, resolved against the public URL; absolute links pass through", () => {
    expect(defaultLink("approval_requested", "t")).toBe("/review");
    expect(defaultLink("budget_exhausted", "t")).toBe("/");
    expect(defaultLink("task_finished", "abc")).toBe("/tasks/abc");
    expect(defaultLink("report_ready", null)).toBe("/review");
    expect(resolveLink(n(), "https://ns.example/")).toBe("https://ns.example/tasks/22222222-2222-4222-8222-222222222222");
    expect(resolveLink(n({ link: "https://elsewhere.example/x" }), "https://ns.example")).toBe("https://elsewhere.example/x");
  });
});

describe("escaping", () => {
  test("Slack mrkdwn escapes &, <, > (the link markup stays intact)", () => {
    const m = slackMessage(n(), "https://ns.example/tasks/1?a=1&b=2");
    expect(m.text).toBe("Research &lt;done&gt; &amp; dusted — <https://ns.example/tasks/1?a=1&amp;b=2|See the result>");
    expect(m.blocks[0]!.text!.text).toContain('1 &lt; 2 &amp; "ok"');
  });

  test("Telegram HTML escapes text and the href attribute", () => {
    const m = telegramMessage(n(), 'https://ns.example/x?"a"&b', "42");
    expect(m.text).toContain("<b>Research &lt;done&gt; &amp; dusted</b>");
    expect(m.text).toContain("1 &lt; 2 &amp; &quot;ok&quot;");
    expect(m.text).toContain('<a href="https://ns.example/x?&quot;a&quot;&amp;b">');
    expect(m).toMatchObject({ chat_id: "42", parse_mode: "HTML", disable_web_page_preview: true });
  });

  test("long bodies are clipped to each channel's limit; a subject is one line", () => {
    const long = n({ title: "line one\nline two", body: "x".repeat(10_000) });
    expect(telegramMessage(long, "https://a.example", "1").text.length).toBeLessThan(4096);
    expect(slackMessage(long, "https://a.example").blocks[0]!.text!.text.length).toBeLessThan(3000);
    expect(emailMessage(long, "https://a.example", "f@example.com", ["t@example.com"]).subject).toBe("Nightshift: line one line two");
  });
});

describe("redaction", () => {
  const token = "123456789:AAExampleTokenValue_abcdefghijklmn";
  test("masks configured secrets, their URL-encoded forms, and token-shaped strings", () => {
    expect(redact(`POST https://api.telegram.org/bot${token}/sendMessage failed`, [token])).toBe(
      "POST https://api.telegram.org/bot[redacted]/sendMessage failed",
    );
    expect(redact(`url=${encodeURIComponent(token)}`, [token])).toBe("url=[redacted]");
    expect(redact("bot987654321:ZZotherTokenOfAnotherBot1234567")).toBe("bot[redacted]");
    expect(redact("https://hooks.slack.com/services/T1/B2/abcdef")).toBe("https://hooks.slack.com/services/[redacted]");
    expect(redact("key re_abcdefghijkl in use")).toBe("key [redacted] in use");
  });
  test("describeError includes the causes (undici hides the reason there), redacted", () => {
    const err = new TypeError("fetch failed", { cause: Object.assign(new Error(`connect ECONNREFUSED /bot${token}`), { code: "ECONNREFUSED" }) });
    const text = describeError(err, [token]);
    expect(text).toContain("fetch failed");
    expect(text).toContain("ECONNREFUSED");
    expect(text).not.toContain(token);
  });
  test("Retry-After as seconds or an HTTP date", () => {
    expect(parseRetryAfter("7")).toBe(7000);
    expect(parseRetryAfter(new Date(Date.UTC(2030, 0, 1, 0, 0, 30)).toUTCString(), Date.UTC(2030, 0, 1))).toBe(30_000);
    expect(parseRetryAfter("soon")).toBeUndefined();
  });
});

describe("configuration", () => {
  test("nothing set: no channel, default public URL", () => {
    const c = loadNotifyConfig({});
    expect(enabledChannels(c)).toEqual([]);
    expect(c.problems).toEqual({});
    expect(c.publicUrl).toBe("http://127.0.0.1:3000");
  });
  test("on Vercel without NIGHTSHIFT_PUBLIC_URL, links use the production domain, else the deployment's URL", () => {
    const vercel = { VERCEL_URL: "ns-abc123.vercel.app", VERCEL_BRANCH_URL: "ns-git-main.vercel.app", VERCEL_PROJECT_PRODUCTION_URL: "ns.example.com" };
    expect(loadNotifyConfig({ ...vercel, VERCEL_ENV: "production" }).publicUrl).toBe("https://ns.example.com");
    expect(loadNotifyConfig({ ...vercel, VERCEL_ENV: "preview" }).publicUrl).toBe("https://ns-git-main.vercel.app");
    expect(loadNotifyConfig({ VERCEL_URL: "ns-abc123.vercel.app" }).publicUrl).toBe("https://ns-abc123.vercel.app");
    expect(loadNotifyConfig({ ...vercel, VERCEL_ENV: "production", NIGHTSHIFT_PUBLIC_URL: "https://mine.example" }).publicUrl).toBe("https://mine.example");
  });
  test("each channel is enabled only when fully configured; half-configured ones are problems, never throws", () => {
    const c = loadNotifyConfig({
      SLACK_WEBHOOK_URL: "https://hooks.slack.com/services/T/B/secret",
      TELEGRAM_BOT_TOKEN: "1:abc",
      NOTIFY_EMAIL_TO: "a@example.com, b@example.com",
      RESEND_API_KEY: "re_key_1234567890",
      NIGHTSHIFT_PUBLIC_URL: "https://ns.example/",
    });
    expect(enabledChannels(c)).toEqual(["slack", "email"]);
    expect(c.problems.telegram).toMatch(/TELEGRAM_CHAT_ID/);
    expect(c.email).toMatchObject({ to: ["a@example.com", "b@example.com"], baseUrl: "https://api.resend.com" });
    expect(c.publicUrl).toBe("https://ns.example");
    expect(c.secrets).toEqual(expect.arrayContaining(["1:abc", "re_key_1234567890", "/services/T/B/secret"]));
    expect(loadNotifyConfig({ NOTIFY_EMAIL_TO: "a@example.com" }).problems.email).toMatch(/RESEND_API_KEY/);
    expect(loadNotifyConfig({ SLACK_WEBHOOK_URL: "not a url" }).problems.slack).toMatch(/SLACK_WEBHOOK_URL/);
  });
});
