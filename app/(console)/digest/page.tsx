// A preview of today's morning digest, exactly as the channels will get it (assembled now).
import { requireSession } from "@/lib/console/server";
import { db } from "@/lib/db/server";
import { assembleDigest, digestConfig, digestText, localDate } from "@/lib/digest";
import { env } from "@/lib/env";
import { loadNotifyConfig } from "@/lib/notifications";

export const dynamic = "force-dynamic";
export const metadata = { title: "Digest · Nightshift" };

export default async function DigestPage() {
  await requireSession();
  const cfg = digestConfig(env());
  const date = localDate(new Date(), cfg.timezone);
  const digest = await assembleDigest(db(), cfg, date);
  const { title, body } = digestText(digest, loadNotifyConfig().publicUrl);
  return (
    <main>
      <h1>Morning digest</h1>
      <p className="muted">
        Preview of {date} ({cfg.timezone}); sent once at {cfg.time} to every configured channel. As JSON: <code>GET /api/digest?date={date}</code>.
      </p>
      <section aria-labelledby="digest-title" data-digest-date={date}>
        <h2 id="digest-title">{title}</h2>
        <pre style={{ whiteSpace: "pre-wrap" }}>{body}</pre>
      </section>
    </main>
  );
}
