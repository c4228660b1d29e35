// The server side of console sessions (issue 11, finding 9): a row per sign-in in public.console_sessions. The
// signed cookie proves who issued it; the row says it is still live, so sign-out ends it for every copy.
import type { AdminClient } from "@/lib/db/admin";
import type { Session } from "./session";

export async function recordSession(db: AdminClient, session: Session): Promise<void> {
  const { error } = await db
    .from("console_sessions")
    .insert({ sid: session.sid, created_at: new Date(session.issuedAt).toISOString(), expires_at: new Date(session.expiresAt).toISOString() });
  if (error) throw new Error(`session record failed: ${error.message}`);
  // Housekeeping: sessions that expired a day ago are of no use to anyone.
  await db.from("console_sessions").delete().lt("expires_at", new Date(session.issuedAt - 86_400_000).toISOString());
}

export async function sessionIsLive(db: AdminClient, session: Session, now = Date.now()): Promise<boolean> {
  const { data, error } = await db
    .from("console_sessions")
    .select("sid")
    .eq("sid", session.sid)
    .is("ended_at", null)
    .gt("expires_at", new Date(now).toISOString())
    .maybeSingle();
  if (error) throw new Error(`session lookup failed: ${error.message}`);
  return data !== null;
}

export async function endSession(db: AdminClient, sid: string, now = Date.now()): Promise<void> {
  const { error } = await db.from("console_sessions").update({ ended_at: new Date(now).toISOString() }).eq("sid", sid).is("ended_at", null);
  if (error) throw new Error(`sign-out failed: ${error.message}`);
}
