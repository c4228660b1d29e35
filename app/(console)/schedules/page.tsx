// Schedules: each schedule's cron and zone, its next run in the owner's time (NIGHTSHIFT_TIMEZONE), its last task's
// status, and enable/disable and run-now buttons.
import Link from "next/link";
import { CSRF_FIELD } from "@/lib/console/csrf";
import { statusLabel } from "@/lib/console/format";
import { formToken, requireSession } from "@/lib/console/server";
import { db } from "@/lib/db/server";
import { env } from "@/lib/env";
import { listSchedules } from "@/lib/schedules/service";
import { scheduleAction } from "./actions";

export const dynamic = "force-dynamic";
export const metadata = { title: "Schedules · Nightshift" };

export default async function SchedulesPage() {
  const session = await requireSession();
  const schedules = await listSchedules(db());
  const tz = env().NIGHTSHIFT_TIMEZONE;
  const local = (iso: string | null) =>
    iso
      ? new Intl.DateTimeFormat("en-GB", { timeZone: tz, weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" }).format(new Date(iso))
      : "—";
  const token = formToken(session);
  return (
    <main>
      <h1>Schedules</h1>
      <p className="muted">
        Times in {tz}. A schedule fires one task per firing; after downtime it runs a missed firing once. Manage them with{" "}
        <code>/api/schedules</code>. The morning digest: <Link href="/digest">preview today's</Link>.
      </p>
      {schedules.length === 0 ? (
        <p className="muted">No schedules yet.</p>
      ) : (
        <table className="cards" aria-label="Schedules">
          <thead>
            <tr>
              <th>Schedule</th>
              <th>When</th>
              <th>Next run</th>
              <th>Last task</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {schedules.map((s) => (
              <tr key={s.id} data-schedule-id={s.id}>
                <td>
                  <b>{s.name}</b>
                  <div className="muted">
                    {s.agent} · {s.mode}
                    {s.require_approval ? " · needs approval" : ""}
                  </div>
                </td>
                <td data-label="When">
                  <code>{s.cron}</code> <span className="muted">{s.timezone}</span>
                </td>
                <td data-label="Next run">{s.enabled ? local(s.next_run_at) : <span className="badge cancelled">disabled</span>}</td>
                <td data-label="Last task">
                  {s.last_task ? (
                    <Link href={`/tasks/${s.last_task.task_id}`}>
                      <span className={`badge ${s.last_task.status}`}>{statusLabel(s.last_task.status)}</span>
                    </Link>
                  ) : (
                    "—"
                  )}
                  {s.skipped_total > 0 ? <div className="muted">{s.skipped_total} missed firing(s) skipped</div> : null}
                </td>
                <td>
                  <form action={scheduleAction} style={{ display: "inline" }}>
                    <input type="hidden" name={CSRF_FIELD} value={token} />
                    <input type="hidden" name="schedule_id" value={s.id} />
                    <button type="submit" name="op" value={s.enabled ? "disable" : "enable"}>
                      {s.enabled ? "Disable" : "Enable"}
                    </button>{" "}
                    <button type="submit" name="op" value="run">
                      Run now
                    </button>
                  </form>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </main>
  );
}
