// What a notification says on each channel: short, human, with the link to the page where the owner acts on it.
// Each channel has its own markup, and each escapes the notification's text for that markup — titles and bodies
// carry agent output and task prompts, which may hold anything.

/** The kinds Nightshift sends. Other lower_snake_case kinds are accepted too (the table checks the shape). */
export const NOTIFICATION_KINDS = [
  "approval_requested",
  "task_finished",
  "task_failed",
  "report_ready",
  "budget_exhausted",
] as const;
export type KnownNotificationKind = (typeof NOTIFICATION_KINDS)[number];
export type NotificationKind = KnownNotificationKind | (string & {});

export interface NotificationContent {
  id: string;
  kind: string;
  title: string;
  body: string;
  /** A path on the public URL ("/review") or an absolute URL; null → the kind's default. */
  link: string | null;
  task_id: string | null;
}

/** Where a notification points when its sender gave no link: the review queue for approvals, the dashboard (spend
 * against each cap) for budget notices, the task's page for work on a task, the review page (the morning summary)
 * for everything else. */
export function defaultLink(kind: string, taskId: string | null | undefined): string {
  if (kind === "approval_requested") return "/review";
  if (kind === "budget_exhausted") return "/";
  if (taskId) return `/tasks/${encodeURIComponent(taskId)}`;
  return "/review";
}

/** The absolute URL of a link: paths are resolved against NIGHTSHIFT_PUBLIC_URL (read at delivery time, so a
 * changed public URL applies to notifications still waiting). */
export function resolveLink(n: Pick<NotificationContent, "kind" | "link" | "task_id">, publicUrl: string): string {
  const link = n.link ?? defaultLink(n.kind, n.task_id);
  if (/^https?:\/\//i.test(link)) return link;
  return `${publicUrl.replace(/\/+$/, "")}${link.startsWith("/") ? link : `/${link}`}`;
}

const LINK_LABEL: Record<string, string> = {
  approval_requested: "Review it",
  task_finished: "See the result",
  task_failed: "See what happened",
  report_ready: "Read the report",
  budget_exhausted: "See today's spend",
};
export const linkLabel = (kind: string) => LINK_LABEL[kind] ?? "Open in Nightshift";

function clip(s: string, max: number): string {
  const chars = [...s];
  return chars.length <= max ? s : `${chars.slice(0, max - 1).join("")}…`;
}
const oneLine = (s: string) => s.replace(/[\r\n\t]+/g, " ").replace(/\s{2,}/g, " ").trim();

// --- Slack (incoming webhook): { text, blocks } in mrkdwn. Only &, < and > are control characters there.
const slackEscape = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

export function slackMessage(n: NotificationContent, url: string) {
  const title = clip(oneLine(n.title), 150);
  const body = clip(n.body.trim(), 2500); // a section's text is capped at 3000 characters
  const link = `<${slackEscape(url).replace(/\|/g, "%7C")}|${linkLabel(n.kind)}>`;
  return {
    // The fallback shown in push notifications and by clients that do not render blocks.
    text: `${slackEscape(title)} — ${link}`,
    blocks: [
      { type: "section", text: { type: "mrkdwn", text: `*${slackEscape(title)}*${body ? `\n${slackEscape(body)}` : ""}` } },
      { type: "context", elements: [{ type: "mrkdwn", text: `${link} · ${slackEscape(url)}` }] },
    ],
    unfurl_links: false,
    unfurl_media: false,
  };
}

// --- Telegram (Bot API sendMessage, parse_mode HTML): text must escape <, > and &; attribute values also ".
const htmlEscape = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

export function telegramMessage(n: NotificationContent, url: string, chatId: string) {
  const title = clip(oneLine(n.title), 200);
  const body = clip(n.body.trim(), 3000); // sendMessage takes up to 4096 characters after entity parsing
  // The URL is also the link's visible text, so it stays readable even where a client drops the link entity.
  const text = `<b>${htmlEscape(title)}</b>${body ? `\n${htmlEscape(body)}` : ""}\n\n${linkLabel(n.kind)}: <a href="${htmlEscape(url)}">${htmlEscape(url)}</a>`;
  return {
    chat_id: chatId,
    text,
    parse_mode: "HTML" as const,
    disable_web_page_preview: true,
    link_preview_options: { is_disabled: true },
  };
}

// --- Email (Resend POST /emails): a plain-text body, and an HTML one with the link as a link.
export function emailMessage(n: NotificationContent, url: string, from: string, to: string[]) {
  const title = clip(oneLine(n.title), 180);
  const body = clip(n.body.trim(), 20_000);
  const label = linkLabel(n.kind);
  return {
    from,
    to,
    subject: `Nightshift: ${title}`,
    text: `${title}\n\n${body ? `${body}\n\n` : ""}${label}: ${url}\n\n— Nightshift`,
    html:
      `<p><strong>${htmlEscape(title)}</strong></p>` +
      (body ? `<p>${htmlEscape(body).replace(/\r?\n/g, "<br>")}</p>` : "") +
      `<p><a href="${htmlEscape(url)}">${htmlEscape(label)}</a></p>` +
      `<p style="color:#888">— Nightshift</p>`,
  };
}
