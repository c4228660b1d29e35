// Notifications: approval requests, finished or failed work, reports and budget notices reach the owner through
// Slack, Telegram and email, once per dedupe key and channel. See docs/notifications.md.
//
//   await notify(db(), { kind: "approval_requested", dedupeKey: `approval_requested:${approval.id}`,
//                        title: "A draft waits for your review", body: "...", taskId, agentId, link: "/review" });
export { notify, announce, sweepNotifications, notificationEventId, type NotifyInput, type NotifyResult, type SweepOptions } from "./notify";
export { NOTIFICATION_KINDS, defaultLink, resolveLink, type KnownNotificationKind, type NotificationKind } from "./format";
export { CHANNELS, enabledChannels, loadNotifyConfig, type Channel, type NotifyConfig } from "./config";
export { NotificationError } from "./store";
export { redact } from "./redact";
