// The signed-in shell: a header with the console's pages and sign-out. Each page checks the session itself as
// well (a layout is not re-rendered on every client navigation, so it cannot be the only guard).
import Link from "next/link";
import type { ReactNode } from "react";
import { CSRF_FIELD } from "@/lib/console/csrf";
import { formToken, requireSession } from "@/lib/console/server";
import { signOutAction } from "./actions";

export const dynamic = "force-dynamic";

export default async function ConsoleLayout({ children }: { children: ReactNode }) {
  const session = await requireSession();
  return (
    <>
      <header className="topbar">
        <div className="topbar-inner">
          <Link href="/" className="brand">
            Nightshift
          </Link>
          <nav aria-label="Console">
            <Link href="/">Tasks</Link>
            <Link href="/review">Review</Link>
            <Link href="/pipelines">Pipelines</Link>
            <Link href="/agents">Agents</Link>
            <Link href="/failed">Failed</Link>
            <Link href="/schedules">Schedules</Link>
            <Link href="/webhooks">Webhooks</Link>
            <form action={signOutAction}>
              <input type="hidden" name={CSRF_FIELD} value={formToken(session)} />
              <button type="submit" className="linkbutton">
                Sign out
              </button>
            </form>
          </nav>
        </div>
      </header>
      {children}
    </>
  );
}
