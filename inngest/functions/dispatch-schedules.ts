// Schedules as data: one cron function, every minute, fires the schedules that are due (lib/schedules/service.ts).
// Step ids are deterministic per firing (`fire-<schedule>-<scheduled_for>`); fire_schedule decides in Postgres, so
// two overlapping dispatchers or a retried firing still make one task per firing. The task's start event is
// recorded in the outbox by the same transaction (docs/outbox.md), so a firing can never leave a task that never runs.
import { inngest } from "@/inngest/client";
import { db } from "@/lib/db/server";
import { dueFirings, fireSchedule } from "@/lib/schedules/service";

export const dispatchSchedules = inngest.createFunction(
  { id: "dispatch-schedules", name: "Fire due schedules", triggers: [{ cron: "* * * * *" }], retries: 3 },
  async ({ step }) => {
    const due = await step.run("find-due", () => dueFirings(db(), new Date()));
    let fired = 0;
    for (const f of due) {
      const r = await step.run(`fire-${f.schedule_id}-${f.scheduled_for}`, () => fireSchedule(db(), f));
      if (r.outcome === "created") fired += 1;
    }
    return { due: due.length, fired };
  },
);
