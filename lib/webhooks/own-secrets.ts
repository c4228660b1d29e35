// Variables holding the deployment's own secrets never verify an inbound delivery, whoever configured the source
// (API or SQL): a source verifying with NIGHTSHIFT_WEBHOOK_SECRET would accept any callback or notice Nightshift
// signed for some receiver, replayed to it; the others are not webhook secrets at all.
export const OWN_SECRETS: ReadonlySet<string> = new Set([
  "NIGHTSHIFT_WEBHOOK_SECRET",
  "NIGHTSHIFT_SESSION_SECRET",
  "NIGHTSHIFT_OPERATOR_PASSWORD",
  "SUPABASE_SECRET_KEY",
  "ANTHROPIC_API_KEY",
  "INNGEST_SIGNING_KEY",
  "INNGEST_SIGNING_KEY_FALLBACK",
  "INNGEST_EVENT_KEY",
  "RESEND_API_KEY",
  "TELEGRAM_BOT_TOKEN",
  "SLACK_WEBHOOK_URL",
]);
