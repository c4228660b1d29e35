// Schedules as data: one cron function, every minute, fires the schedules that are due (lib/schedules/service.ts).
// Step ids are deterministic per firing (`fire-<schedule>-<scheduled_for>`); fire_schedule decides in Postgres, so
// two overlapping dispatchers or a retried firing still make one task per firing. A firing that made (or, on a
// retry, had made) a task starts its run with `task/run.requested` under the task's event id (a repeat is dropped).
import { inngest } from "@/inngest/client";
import { taskRunRequested, taskRunRequestedId } from "@/inngest/events";
import { db } from "@/lib/db/server";
import { dueFirings, fireSchedule } from "@/lib/schedules/service";

export const dispatchSchedules = inngest.createFunction(
  { id: "dispatch-schedules", name: "Fire due schedules", triggers: [{ cron: "* * * * *" }], retries: 3 },
  async ({ step }) => {
    const due = await step.run("find-due", () => dueFirings(db(), new Date()));
    let started = 0;
    for (const f of due) {
      const fired = await step.run(`fire-${f.schedule_id}-${f.scheduled_for}`, () => fireSchedule(db(), f));
      if (fired.outcome === "not_due" || !fired.task_id || !fired.agent) continue;
      await step.sendEvent(
        `start-${fired.task_id}`,
        taskRunRequested.create({ task_id: fired.task_id, agent: fired.agent }, { id: taskRunRequestedId(fired.task_id) }),
      );
      started += 1;
    }
    return { due: due.length, started };
  },
);
