// send_email under retried and duplicated steps, on the real database, with a capture server standing in for
// Resend through RESEND_BASE_URL: one email per tool call, however often (or however concurrently) the call runs.
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "vitest";
import { runToolCall, TransientToolError, type ToolContext } from "../../../lib/agents/tools";
import { loadToolConfig } from "../../../lib/agents/tools/config";
import { CircuitOpenError } from "../../../lib/breakers";
import { SideEffectInProgressError, sideEffectKey } from "../../../lib/side-effects";
import { startCaptureServer, type CaptureServer } from "../../support/capture-server";
import { createTestSupabase, type TestSupabase } from "../../support/supabase";
import { sql } from "../db/sql";

let sb: TestSupabase;
let resend: CaptureServer;
let taskId: string;

beforeAll(async () => {
  [sb, resend] = await Promise.all([createTestSupabase(), startCaptureServer()]);
  // Resend's circuit breaker lives in this database (lib/breakers reads its settings from the environment).
  Object.assign(process.env, { SUPABASE_URL: sb.supabaseUrl, SUPABASE_SECRET_KEY: sb.secretKey, ANTHROPIC_BASE_URL: "http://127.0.0.1:9" });
  (await import("../../../lib/env")).resetEnvCache();
  const { data, error } = await sb.admin.from("tasks").insert({ agent_id: "outreach", prompt: "email test" }).select("id").single();
  expect(error).toBeNull();
  taskId = data!.id;
});
afterAll(async () => {
  await resend?.stop();
  await sb?.stop();
});
beforeEach(() => {
  resend.requests.length = 0;
  resend.delayMs = 0;
});

const EMAIL = { to: ["ada@example.com"], subject: "Hello from Nightshift", text: "A short, honest note." };

function ctx(toolUseId: string, vars: Record<string, string> = { RESEND_API_KEY: "re_test_key" }, now?: Date): ToolContext {
  return {
    db: sb.admin,
    taskId,
    toolUseId,
    ...(now ? { now } : {}),
    config: loadToolConfig({ RESEND_BASE_URL: resend.url, NIGHTSHIFT_EMAIL_FROM: "Nightshift <night@example.com>", ...vars }),
  };
}

const emailPosts = () => resend.requests.filter((r) => r.method === "POST" && r.url === "/emails");

describe("send_email", () => {
  test("posts one email to Resend with the ledger key as Idempotency-Key; a retried step sends nothing more", async () => {
    const toolUseId = `toolu_${randomUUID()}`;
    const first = await runToolCall("send_email", EMAIL, ctx(toolUseId));
    expect(first.is_error).toBeUndefined();
    expect(JSON.parse(first.content)).toEqual({
      sent: true,
      dry_run: false,
      id: "email_1",
      from: "Nightshift <night@example.com>",
      to: EMAIL.to,
      subject: EMAIL.subject,
    });

    const [post] = emailPosts();
    expect(post!.headers.authorization).toBe("Bearer re_test_key");
    expect(post!.headers["idempotency-key"]).toBe(sideEffectKey(taskId, toolUseId));
    expect(post!.json).toEqual({ from: "Nightshift <night@example.com>", ...EMAIL });

    // The retried step: same tool_use id, same input.
    const again = await runToolCall("send_email", EMAIL, ctx(toolUseId));
    expect(again).toEqual({ ...first, replayed: true });
    expect(emailPosts()).toHaveLength(1);
  });

  test("concurrent duplicates of the same call send exactly one email", async () => {
    const toolUseId = `toolu_${randomUUID()}`;
    resend.delayMs = 200; // keep the first POST in flight while the duplicates arrive
    const outcomes = await Promise.allSettled(Array.from({ length: 10 }, () => runToolCall("send_email", EMAIL, ctx(toolUseId))));
    const fulfilled = outcomes.filter((o) => o.status === "fulfilled").map((o) => o.value);
    const rejected = outcomes.filter((o) => o.status === "rejected").map((o) => o.reason as unknown);
    expect(fulfilled.length).toBeGreaterThanOrEqual(1);
    for (const r of rejected) expect(r).toBeInstanceOf(SideEffectInProgressError);
    expect(new Set(fulfilled.map((f) => f.content)).size).toBe(1);

    // The rejected ones are retried by their steps: they get the same result, still without sending.
    const retried = await runToolCall("send_email", EMAIL, ctx(toolUseId));
    expect(retried.content).toBe(fulfilled[0]!.content);
    expect(emailPosts()).toHaveLength(1);
  });

  test("a different tool call sends a second email", async () => {
    await runToolCall("send_email", EMAIL, ctx(`toolu_${randomUUID()}`));
    await runToolCall("send_email", EMAIL, ctx(`toolu_${randomUUID()}`));
    const posts = emailPosts();
    expect(posts).toHaveLength(2);
    expect(posts[0]!.headers["idempotency-key"]).not.toBe(posts[1]!.headers["idempotency-key"]);
  });

  test("a Resend 500 fails the step (retryable); the retry resends with the same Idempotency-Key, then it is done", async () => {
    const toolUseId = `toolu_${randomUUID()}`;
    resend.failNext(1, 500);
    await expect(runToolCall("send_email", EMAIL, ctx(toolUseId))).rejects.toBeInstanceOf(TransientToolError);
    const ok = await runToolCall("send_email", EMAIL, ctx(toolUseId));
    expect(JSON.parse(ok.content)).toMatchObject({ sent: true });
    await runToolCall("send_email", EMAIL, ctx(toolUseId));
    const posts = emailPosts();
    expect(posts).toHaveLength(2);
    expect(posts.map((p) => p.headers["idempotency-key"])).toEqual([sideEffectKey(taskId, toolUseId), sideEffectKey(taskId, toolUseId)]);
  });

  test("Resend down: the 5th failure opens its breaker (CircuitOpenError with the probe time); while open nothing is sent; after the cool-down the probe sends once and closes it", async () => {
    await sb.admin.from("breakers").delete().eq("dependency", "resend");
    const toolUseId = `toolu_${randomUUID()}`;
    const t0 = Date.now();
    const at = (ms: number) => ctx(toolUseId, undefined, new Date(t0 + ms));
    resend.failNext(5, 503);
    for (let i = 1; i <= 4; i++) await expect(runToolCall("send_email", EMAIL, at(i * 1000))).rejects.toBeInstanceOf(TransientToolError);
    const opened = await runToolCall("send_email", EMAIL, at(5000)).catch((e: unknown) => e);
    expect(opened).toBeInstanceOf(CircuitOpenError);
    expect(Date.parse((opened as CircuitOpenError).nextProbeAt)).toBe(t0 + 5000 + 60_000);
    expect(emailPosts()).toHaveLength(5);
    // Open: refused at once, without a request.
    await expect(runToolCall("send_email", EMAIL, at(30_000))).rejects.toBeInstanceOf(CircuitOpenError);
    expect(emailPosts()).toHaveLength(5);
    // After the cool-down one probe goes out (Resend is back), sends the email once, and closes the breaker.
    const sent = await runToolCall("send_email", EMAIL, at(66_000));
    expect(JSON.parse(sent.content)).toMatchObject({ sent: true });
    expect(emailPosts()).toHaveLength(6);
    const { data } = await sb.admin.from("breakers").select("state").eq("dependency", "resend").single();
    expect(data!.state).toBe("closed");
    await runToolCall("send_email", EMAIL, at(70_000)); // the ledger: a retried step sends nothing more
    expect(emailPosts()).toHaveLength(6);
  });

  test("a permanent refusal (422) is an is_error result recorded once; a retry does not resend", async () => {
    const toolUseId = `toolu_${randomUUID()}`;
    resend.failNext(1, 422, { statusCode: 422, name: "validation_error", message: "The `to` field is invalid." });
    const res = await runToolCall("send_email", EMAIL, ctx(toolUseId));
    expect(res.is_error).toBe(true);
    expect(res.content).toBe("Resend refused the email (422 validation_error: The `to` field is invalid.)");
    const again = await runToolCall("send_email", EMAIL, ctx(toolUseId));
    expect(again).toEqual({ ...res, replayed: true });
    expect(emailPosts()).toHaveLength(1);
  });

  test("without RESEND_API_KEY it is a dry run: no request leaves, the ledger records the email, the result says so", async () => {
    const toolUseId = `toolu_${randomUUID()}`;
    const res = await runToolCall("send_email", EMAIL, ctx(toolUseId, {}));
    expect(res.is_error).toBeUndefined();
    const data = JSON.parse(res.content) as Record<string, unknown>;
    expect(data).toMatchObject({ sent: false, dry_run: true, to: EMAIL.to, subject: EMAIL.subject });
    expect(data.message).toMatch(/^DRY RUN: no email was sent because RESEND_API_KEY is not set/);
    expect(resend.requests).toHaveLength(0);

    const [row] = await sql<{ status: string; request: unknown }>(
      sb.databaseUrl,
      "select status, request from public.side_effects where task_id = $1 and tool_use_id = $2",
      [taskId, toolUseId],
    );
    expect(row).toEqual({ status: "completed", request: { from: "Nightshift <night@example.com>", ...EMAIL } });
  });

  test.each([
    [{ ...EMAIL, to: ["not-an-address"] }, /to\.0: Invalid email address/],
    [{ ...EMAIL, to: [] }, /to: /],
    [{ ...EMAIL, to: Array.from({ length: 11 }, (_, i) => `r${i}@example.com`) }, /to: .*(10|Too big)/i],
    [{ ...EMAIL, to: ["a@example.com", "A@example.com"] }, /to: must not repeat an address/],
    [{ ...EMAIL, subject: "two\nlines" }, /subject: must be a single line/],
    [{ to: EMAIL.to, text: "x" }, /subject: /],
  ])("malformed input is a readable is_error result and touches nothing (%#)", async (input, message) => {
    const toolUseId = `toolu_${randomUUID()}`;
    const res = await runToolCall("send_email", input, ctx(toolUseId));
    expect(res.is_error).toBe(true);
    expect(res.content).toMatch(/^Invalid input for send_email: /);
    expect(res.content).toMatch(message);
    expect(resend.requests).toHaveLength(0);
    const rows = await sql(sb.databaseUrl, "select 1 from public.side_effects where tool_use_id = $1", [toolUseId]);
    expect(rows).toHaveLength(0);
  });

  test("a configured recipient cap below the schema's is enforced with a readable error", async () => {
    const res = await runToolCall(
      "send_email",
      { ...EMAIL, to: ["a@example.com", "b@example.com", "c@example.com"] },
      ctx(`toolu_${randomUUID()}`, { RESEND_API_KEY: "re_test_key", NIGHTSHIFT_EMAIL_MAX_RECIPIENTS: "2" }),
    );
    expect(res.is_error).toBe(true);
    expect(res.content).toMatch(/to: at most 2 recipients/);
    expect(resend.requests).toHaveLength(0);
  });

  test("the daily cap (NIGHTSHIFT_EMAIL_DAILY_MAX): once reached, nothing more leaves, and the model is told so", async () => {
    // Before, nothing bounded the mail a model could send in a day but its budget: "send 10,000 emails" was a matter
    // of turns.
    const used = async () =>
      Number((await sql<{ n: string }>(sb.databaseUrl, "select coalesce(sum(recipients), 0)::text as n from public.email_quota_uses where used_at > now() - interval '24 hours'"))[0]!.n);
    const cap = String((await used()) + 2);
    const vars = { RESEND_API_KEY: "re_test_key", NIGHTSHIFT_EMAIL_DAILY_MAX: cap };
    const ids = [1, 2, 3].map(() => `toolu_${randomUUID()}`);
    const results = [];
    for (const id of ids) results.push(await runToolCall("send_email", EMAIL, ctx(id, vars)));
    expect(results.map((r) => r.is_error === true)).toEqual([false, false, true]);
    expect(results[2]!.content).toMatch(/NOT sent: the daily cap of \d+ recipients in 24 hours/);
    expect(emailPosts()).toHaveLength(2);
    // A retried step of a sent email is not counted again; the refused one stays refused.
    expect((await runToolCall("send_email", EMAIL, ctx(ids[0]!, vars))).replayed).toBe(true);
    expect((await runToolCall("send_email", EMAIL, ctx(ids[2]!, vars))).is_error).toBe(true);
    expect(emailPosts()).toHaveLength(2);
    expect(String(await used())).toBe(cap);
  });

  test("reserve_email_quota under 40 parallel calls: exactly the cap is allowed, and a repeat is never counted twice", async () => {
    const before = Number((await sql<{ n: string }>(sb.databaseUrl, "select coalesce(sum(recipients), 0)::text as n from public.email_quota_uses where used_at > now() - interval '24 hours'"))[0]!.n);
    const max = before + 10;
    const reserve = (toolUseId: string) =>
      sb.admin.rpc("reserve_email_quota", { p_task_id: taskId, p_tool_use_id: toolUseId, p_recipients: 1, p_daily_max: max });
    const ids = Array.from({ length: 40 }, (_, i) => `toolu_hammer_${i}_${randomUUID()}`);
    // Each id twice, all at once: a retried step racing its first attempt.
    const answers = await Promise.all([...ids, ...ids].map((id) => reserve(id)));
    for (const a of answers) expect(a.error).toBeNull();
    const allowedIds = new Set(ids.filter((id, i) => (answers[i]!.data as { allowed: boolean }[])[0]!.allowed));
    expect(allowedIds.size).toBe(10);
    const [row] = await sql<{ n: string }>(sb.databaseUrl, "select count(*)::text as n from public.email_quota_uses where tool_use_id like 'toolu_hammer_%'");
    expect(Number(row!.n)).toBe(10);
  });
});
