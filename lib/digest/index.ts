// The morning digest: one message a day, at NIGHTSHIFT_DIGEST_TIME in NIGHTSHIFT_TIMEZONE, through every configured
// notification channel (Slack, Telegram, email through Resend as HTML with a plain-text part). It says what
// finished and what failed overnight (with the dead-letter queue's link when failures wait there), the drafts
// waiting for review with their time left, each agent's spend against its cap, and anything degraded (an open
// circuit breaker) or waiting (budget, rate limit, dependency). Exactly once per day: it is sent with notify() under
// the key `digest:<local date>`, which Postgres keeps unique — retries, overlapping ticks and two instances all
// find the same row. The night it covers runs from the previous digest time to this one.
import type { AdminClient } from "@/lib/db/admin";
import { listPendingApprovals } from "@/lib/approvals";
import { listBreakers } from "@/lib/breakers";
import { spendByAgentDay } from "@/lib/budget";
import { notify, type NotifyResult } from "@/lib/notifications";

export interface DigestConfig {
  timezone: string;
  /** HH:MM, local. */
  time: string;
  /** Send a one-line "nothing ran" after an empty night. */
  sendEmpty: boolean;
  /** False when NIGHTSHIFT_DIGEST_TIME=off: nothing is sent (the preview and GET /api/digest still work). */
  enabled?: boolean;
}

export interface Digest {
  date: string;
  timezone: string;
  window: { from: string; to: string };
  empty: boolean;
  finished: { task_id: string; agent: string; status: string; prompt: string; cost_micros: number; finished_at: string }[];
  failed: { task_id: string; agent: string; prompt: string; reason: string | null; dead_letter_id: string | null; finished_at: string }[];
  drafts_waiting: { approval_id: string; task_id: string; expires_at: string; hours_left: number; auto_action: string }[];
  spend: { agent: string; cap_micros: number; yesterday_micros: number; today_micros: number }[];
  degraded: { dependency: string; state: string; since: string; next_probe_at: string | null; last_error: string | null }[];
  waiting: { task_id: string; agent: string; status: string; reason: string | null }[];
  links: { review: string; failed: string | null; tasks: string };
}

const MAX_ITEMS = 50;

/** The UTC instant of local `HH:MM` on local date `YYYY-MM-DD` in `tz` (the first such instant on a DST day). */
export function localTimeToUtc(date: string, time: string, tz: string): Date {
  const [y, m, d] = date.split("-").map(Number) as [number, number, number];
  const [hh, mm] = time.split(":").map(Number) as [number, number];
  let guess = Date.UTC(y, m - 1, d, hh, mm);
  // Two corrections converge for every real zone offset (including DST days).
  for (let i = 0; i < 2; i++) guess = Date.UTC(y, m - 1, d, hh, mm) - offsetMs(new Date(guess), tz);
  return new Date(guess);
}

function offsetMs(at: Date, tz: string): number {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat("en-US", { timeZone: tz, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" })
      .formatToParts(at)
      .map((p) => [p.type, p.value]),
  );
  const asUtc = Date.UTC(Number(parts.year), Number(parts.month) - 1, Number(parts.day), Number(parts.hour), Number(parts.minute), Number(parts.second));
  return asUtc - Math.floor(at.getTime() / 1000) * 1000;
}

export function localDate(at: Date, tz: string): string {
  return new Intl.DateTimeFormat("en-CA", { timeZone: tz, year: "numeric", month: "2-digit", day: "2-digit" }).format(at);
}

function previousDate(date: string): string {
  const t = Date.parse(`${date}T12:00:00Z`) - 86_400_000;
  return new Date(t).toISOString().slice(0, 10);
}

/** The digest due at `now`: today's local date once the local digest time has passed, else null. */
export function dueDigestDate(cfg: DigestConfig, now: Date): string | null {
  const today = localDate(now, cfg.timezone);
  return now.getTime() >= localTimeToUtc(today, cfg.time, cfg.timezone).getTime() ? today : null;
}

/** Assembles the digest of local date `date` (the night before that day's digest time). Read-only. */
export async function assembleDigest(db: AdminClient, cfg: DigestConfig, date: string, now = new Date()): Promise<Digest> {
  const to = localTimeToUtc(date, cfg.time, cfg.timezone);
  const from = localTimeToUtc(previousDate(date), cfg.time, cfg.timezone);
  const end = new Date(Math.min(to.getTime(), now.getTime())).toISOString();
  const start = from.toISOString();

  const [ended, approvals, breakers, waitingRows, agents, deadLetters] = await Promise.all([
    db
      .from("tasks")
      .select("id,agent_id,status,status_reason,prompt,cost_micros,finished_at")
      .gte("finished_at", start)
      .lt("finished_at", end)
      .order("finished_at", { ascending: true })
      .limit(1000),
    listPendingApprovals(db, MAX_ITEMS),
    listBreakers(db),
    db.from("tasks").select("id,agent_id,status,status_reason").in("status", ["waiting_budget", "waiting_rate_limit", "waiting_dependency"]).limit(MAX_ITEMS),
    db.from("agents").select("id,daily_budget_micros,budget_timezone").order("id"),
    db.from("dead_letters").select("id,task_id").eq("status", "pending").limit(1000),
  ]);
  for (const r of [ended, waitingRows, agents, deadLetters]) if (r.error) throw new Error(`digest read failed: ${r.error.message}`);

  const dlByTask = new Map((deadLetters.data ?? []).map((d) => [d.task_id, d.id]));
  const rows = ended.data ?? [];
  const finished = rows
    .filter((t) => t.status !== "failed")
    .slice(0, MAX_ITEMS)
    .map((t) => ({ task_id: t.id, agent: t.agent_id, status: t.status, prompt: clip(t.prompt, 120), cost_micros: Number(t.cost_micros), finished_at: t.finished_at! }));
  const failed = rows
    .filter((t) => t.status === "failed")
    .slice(0, MAX_ITEMS)
    .map((t) => ({ task_id: t.id, agent: t.agent_id, prompt: clip(t.prompt, 120), reason: t.status_reason, dead_letter_id: dlByTask.get(t.id) ?? null, finished_at: t.finished_at! }));

  const agentRows = agents.data ?? [];
  const spendRows = agentRows.length ? await spendByAgentDay(db, { from: previousDate(date), to: date }) : [];
  const spend = agentRows.map((a) => {
    const today = localDate(now < to ? now : to, a.budget_timezone);
    const committed = (day: string) =>
      Number(spendRows.find((r) => r.agent_id === a.id && String(r.window_start).slice(0, 10) === day)?.committed_micros ?? 0);
    return { agent: a.id, cap_micros: Number(a.daily_budget_micros), yesterday_micros: committed(previousDate(today)), today_micros: committed(today) };
  });

  const drafts_waiting = approvals.map((a) => ({
    approval_id: a.id,
    task_id: a.task_id,
    expires_at: a.expires_at,
    hours_left: Math.max(0, Math.round(((Date.parse(a.expires_at) - now.getTime()) / 3_600_000) * 10) / 10),
    auto_action: a.auto_action,
  }));
  const degraded = breakers
    .filter((b) => b.state !== "closed")
    .map((b) => ({ dependency: b.dependency, state: b.state, since: b.since, next_probe_at: b.next_probe_at, last_error: b.last_error }));
  const waiting = (waitingRows.data ?? []).map((t) => ({ task_id: t.id, agent: t.agent_id, status: t.status, reason: t.status_reason }));

  return {
    date,
    timezone: cfg.timezone,
    window: { from: start, to: to.toISOString() },
    empty: finished.length === 0 && failed.length === 0 && drafts_waiting.length === 0 && degraded.length === 0 && waiting.length === 0,
    finished,
    failed,
    drafts_waiting,
    spend,
    degraded,
    waiting,
    links: { review: "/review", failed: failed.some((f) => f.dead_letter_id) ? "/failed" : null, tasks: "/" },
  };
}

const usd = (micros: number) => `$${(micros / 1_000_000).toFixed(2)}`;
const clip = (s: string, n: number) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);

/** The digest as plain text (each channel renders it: Slack and Telegram as text, email as HTML plus this text). */
export function digestText(d: Digest, publicUrl: string): { title: string; body: string } {
  const url = (p: string) => `${publicUrl.replace(/\/$/, "")}${p}`;
  if (d.empty) return { title: `Morning digest ${d.date}: nothing ran`, body: `Nothing ran overnight, nothing waits for you.` };
  const lines: string[] = [];
  const counts = (xs: { status: string }[]) =>
    Object.entries(xs.reduce<Record<string, number>>((acc, x) => ({ ...acc, [x.status]: (acc[x.status] ?? 0) + 1 }), {}))
      .map(([k, v]) => `${v} ${k}`)
      .join(", ");
  lines.push(`Finished: ${d.finished.length ? counts(d.finished) : "none"}`);
  for (const t of d.finished.slice(0, 10)) lines.push(`  • [${t.agent}] ${t.status}: ${t.prompt} (${usd(t.cost_micros)}) ${url(`/tasks/${t.task_id}`)}`);
  lines.push(`Failed: ${d.failed.length || "none"}`);
  for (const t of d.failed.slice(0, 10)) lines.push(`  • [${t.agent}] ${t.prompt}${t.reason ? ` — ${clip(t.reason, 160)}` : ""}`);
  if (d.links.failed) lines.push(`  Dead letters to review and replay: ${url(d.links.failed)}`);
  lines.push(`Drafts waiting for review: ${d.drafts_waiting.length || "none"}`);
  for (const a of d.drafts_waiting.slice(0, 10)) lines.push(`  • ${a.hours_left} h left (then auto-${a.auto_action})`);
  if (d.drafts_waiting.length) lines.push(`  Review them: ${url(d.links.review)}`);
  lines.push(`Spend against caps:`);
  for (const s of d.spend) lines.push(`  • ${s.agent}: yesterday ${usd(s.yesterday_micros)}, today so far ${usd(s.today_micros)} of ${usd(s.cap_micros)}`);
  if (d.degraded.length) {
    lines.push(`Degraded:`);
    for (const b of d.degraded) lines.push(`  • ${b.dependency} ${b.state} since ${b.since}${b.next_probe_at ? `, next probe ${b.next_probe_at}` : ""}`);
  }
  if (d.waiting.length) {
    lines.push(`Waiting:`);
    for (const t of d.waiting.slice(0, 10)) lines.push(`  • [${t.agent}] ${t.status}${t.reason ? `: ${clip(t.reason, 160)}` : ""}`);
  }
  const title = `Morning digest ${d.date}: ${d.finished.length} finished, ${d.failed.length} failed, ${d.drafts_waiting.length} to review`;
  return { title, body: lines.join("\n") };
}

export interface DigestSendResult {
  date: string | null;
  sent: boolean;
  reason: string;
  notification_id: string | null;
}

/**
 * Sends today's digest if it is due and not sent yet. Safe to call from any number of ticks and instances: notify()
 * records `digest:<date>` once (unique in Postgres) and only that first call announces it.
 */
export async function sendDigestIfDue(db: AdminClient, cfg: DigestConfig, publicUrl: string, now = new Date()): Promise<DigestSendResult> {
  if (cfg.enabled === false) return { date: null, sent: false, reason: "turned off (NIGHTSHIFT_DIGEST_TIME=off)", notification_id: null };
  const date = dueDigestDate(cfg, now);
  if (!date) return { date: null, sent: false, reason: "not yet time", notification_id: null };
  const dedupeKey = `digest:${date}`;
  const { data: existing, error } = await db.from("notifications").select("id").eq("dedupe_key", dedupeKey).maybeSingle();
  if (error) throw new Error(`digest lookup failed: ${error.message}`);
  if (existing) return { date, sent: false, reason: "sent already", notification_id: existing.id };
  const digest = await assembleDigest(db, cfg, date, now);
  if (digest.empty && !cfg.sendEmpty) return { date, sent: false, reason: "empty night (NIGHTSHIFT_DIGEST_EMPTY=false)", notification_id: null };
  const { title, body } = digestText(digest, publicUrl);
  const r: NotifyResult = await notify(db, {
    kind: "digest",
    dedupeKey,
    title,
    body,
    link: "/review",
    payload: { date, finished: digest.finished.length, failed: digest.failed.length, drafts_waiting: digest.drafts_waiting.length },
  });
  return { date, sent: r.created, reason: r.created ? "sent" : "sent already", notification_id: r.notificationId };
}

/** The digest settings from the app's configuration. */
export function digestConfig(e: { NIGHTSHIFT_TIMEZONE: string; NIGHTSHIFT_DIGEST_TIME: string; NIGHTSHIFT_DIGEST_EMPTY: boolean }): DigestConfig {
  const off = e.NIGHTSHIFT_DIGEST_TIME === "off";
  // Turned off, the preview still covers the night as if it were sent at the default 07:00.
  return { timezone: e.NIGHTSHIFT_TIMEZONE, time: off ? "07:00" : e.NIGHTSHIFT_DIGEST_TIME, sendEmpty: e.NIGHTSHIFT_DIGEST_EMPTY, enabled: !off };
}
