// The wire format of the schedules API (snake_case). Cron expressions and time zones are checked with the same
// library that runs them, so a 400 names `cron` or `timezone` with croner's own reason.
import { z } from "zod";
import { cronProblem, isTimeZone } from "./cron";

const cronField = z
  .string({ error: "cron is required (e.g. \"0 2 * * *\")" })
  .trim()
  .min(9, "cron must be a cron expression such as \"0 2 * * *\"")
  .max(200)
  .superRefine((v, ctx) => {
    const problem = cronProblem(v);
    if (problem) ctx.addIssue({ code: "custom", message: `invalid cron expression: ${problem}` });
  });

const timezoneField = z
  .string()
  .trim()
  .refine(isTimeZone, { message: "timezone must be an IANA time zone such as Europe/Berlin or UTC" });

const fields = {
  name: z.string().trim().min(1, "name must not be empty").max(100),
  agent: z.string().regex(/^[a-z][a-z0-9_-]{1,39}$/, { message: "agent must be an agent id such as research, content or outreach" }),
  cron: cronField,
  timezone: timezoneField,
  prompt: z.string().trim().min(1, "prompt must not be empty").max(20_000),
  input: z.record(z.string(), z.unknown()).nullable(),
  mode: z.enum(["now", "batch"]),
  require_approval: z.boolean(),
  enabled: z.boolean(),
};

export const CreateScheduleBody = z.strictObject({
  name: fields.name,
  agent: fields.agent,
  cron: fields.cron,
  timezone: fields.timezone.default("UTC"),
  prompt: fields.prompt,
  input: fields.input.optional(),
  mode: fields.mode.default("now"),
  require_approval: fields.require_approval.default(false),
  enabled: fields.enabled.default(true),
});
export type CreateScheduleBody = z.infer<typeof CreateScheduleBody>;

export const UpdateScheduleBody = z
  .strictObject({
    name: fields.name,
    agent: fields.agent,
    cron: fields.cron,
    timezone: fields.timezone,
    prompt: fields.prompt,
    input: fields.input,
    mode: fields.mode,
    require_approval: fields.require_approval,
    enabled: fields.enabled,
  })
  .partial()
  .refine((b) => Object.keys(b).length > 0, { message: "send at least one field to change" });
export type UpdateScheduleBody = z.infer<typeof UpdateScheduleBody>;

export const ScheduleId = z.uuid();
