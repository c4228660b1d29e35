// `agent/task.requested`: other apps start work by sending an Inngest event instead of calling the HTTP API. The
// payload is validated here (not by the trigger's schema, so that a bad payload is a clear, named failure rather
// than a run that never starts); the task is recorded through submitTask — the same path as POST /api/tasks — with
// the idempotency key `event:<idempotency_key>` (or `event-id:<the event's id>` when the sender gave none), so a
// repeated event makes one task. A payload that does not fit, or a key reused with another body, fails the run
// for good with the field named, and the operator gets a notification.
import { NonRetriableError } from "inngest";
import { inngest } from "@/inngest/client";
import { agentTaskRequestedSchema } from "@/inngest/events";
import { db } from "@/lib/db/server";
import { ApiError } from "@/lib/http/errors";
import { notify } from "@/lib/notifications";
import { submitTask } from "@/lib/tasks/submit";

export const taskRequested = inngest.createFunction(
  { id: "agent-task-requested", name: "Record and run a task asked for by an app event", triggers: [{ event: "agent/task.requested" }], retries: 4 },
  async ({ event, step }) => {
    const parsed = agentTaskRequestedSchema.safeParse(event.data);
    if (!parsed.success) {
      const problems = parsed.error.issues.map((i) => {
        if (i.code === "unrecognized_keys") return `${i.keys.join(", ")}: unknown field(s)`;
        return `${i.path.map(String).join(".") || "(data)"}: ${i.message}`;
      });
      await refuse(step, event.id ?? "no-id", problems.join("; "));
    }
    const { idempotency_key, ...body } = parsed.data!;
    const key = idempotency_key ? `event:${idempotency_key}` : `event-id:${event.id ?? ""}`;
    if (key === "event-id:") await refuse(step, "no-id", "idempotency_key: required when the event has no id");

    const created = await step.run("record-task", async () => {
      try {
        const t = await submitTask(db(), body, null, key);
        return { ok: true as const, task_id: t.taskId, outcome: t.outcome };
      } catch (err) {
        // A 4xx (unknown agent, key reused with another body) will not change on a retry.
        if (err instanceof ApiError && err.status < 500) return { ok: false as const, problem: err.message };
        throw err;
      }
    });
    if (!created.ok) await refuse(step, event.id ?? key, created.problem);
    return created;
  },
);

type Step = Parameters<Parameters<typeof inngest.createFunction>[1]>[0]["step"];

/** Tells the operator, then fails the run for good with the problem in its message. */
async function refuse(step: Step, eventId: string, problem: string): Promise<never> {
  await step.run("notify-refused", () =>
    notify(db(), {
      kind: "app_event_refused",
      dedupeKey: `app_event_refused:${eventId}`.slice(0, 300),
      title: "An agent/task.requested event was refused",
      body: `The event could not start a task: ${problem}`.slice(0, 4000),
      link: "/",
    }),
  );
  throw new NonRetriableError(`agent/task.requested refused: ${problem}`);
}
