// Webhook sources as an operator manages them (GET/POST /api/webhook-sources, GET/PATCH
// /api/webhook-sources/:name, the console's Webhooks page): the row, how many of its secret variables are set (never
// the secrets: a source names the environment variables that hold them), its refusal counters, and changes made by
// one audited Postgres function (save_webhook_source writes the change and its audit row in one statement).
import { z } from "zod";
import type { AdminClient } from "@/lib/db/admin";
import type { Json } from "@/lib/db/database.types";
import { isStandardWebhookSecret } from "@/lib/env";
import { ApiError } from "@/lib/http/errors";
import type { RefusalReason, WebhookSource } from "./inbound";
import { CallbackUrl, type TaskMode } from "@/lib/tasks/schema";
import { OWN_SECRETS } from "./own-secrets";

export const SourceName = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, "name must be 1-63 of a-z, 0-9, _ and -, starting with a letter or digit");

const fields = {
  agent: z.string({ error: "agent is required" }).regex(/^[a-z][a-z0-9_-]{1,39}$/, "agent must be an agent id such as research, content or outreach"),
  description: z.string().max(500, "description must be at most 500 characters"),
  prompt_template: z.string({ error: "prompt_template is required" }).trim().min(1, "prompt_template must not be empty").max(20_000),
  input_mapping: z
    .record(z.string().min(1).max(100), z.string().regex(/^[A-Za-z_][\w-]*(\.[\w-]+)*$/, "each mapping value must be a dotted payload path such as payload.issue.number"))
    .refine((m) => Object.keys(m).length <= 50, "input_mapping has at most 50 fields"),
  mode: z.enum(["now", "batch"], { error: "mode must be now or batch" }),
  require_approval: z.boolean({ error: "require_approval must be true or false" }),
  callback_url: CallbackUrl.nullable(),
  secret_env_names: z
    .array(
      z
        .string()
        .regex(/^[A-Z][A-Z0-9_]{2,63}$/, "each secret_env_names entry must be an environment variable name such as GITHUB_WEBHOOK_SECRET")
        .refine((n) => !OWN_SECRETS.has(n), "names one of Nightshift's own secrets; give the source a variable of its own"),
      {
        error: "secret_env_names must list the environment variables holding the whsec_ secrets",
      },
    )
    .min(1, "secret_env_names needs at least one variable name")
    .max(5, "secret_env_names lists at most 5 variable names"),
  enabled: z.boolean({ error: "enabled must be true or false" }),
};

/** POST /api/webhook-sources. Secrets are never sent: a source names the variables that hold them. */
export const CreateSourceBody = z.strictObject({
  name: SourceName,
  agent: fields.agent,
  description: fields.description.optional(),
  prompt_template: fields.prompt_template,
  input_mapping: fields.input_mapping.optional(),
  mode: fields.mode.optional(),
  require_approval: fields.require_approval.optional(),
  callback_url: fields.callback_url.optional(),
  secret_env_names: fields.secret_env_names,
  enabled: fields.enabled.optional(),
});
export type CreateSourceBody = z.infer<typeof CreateSourceBody>;

/** PATCH /api/webhook-sources/:name — any field but the name; `enabled` switches it on or off. */
export const UpdateSourceBody = z
  .strictObject({
    agent: fields.agent,
    description: fields.description,
    prompt_template: fields.prompt_template,
    input_mapping: fields.input_mapping,
    mode: fields.mode,
    require_approval: fields.require_approval,
    callback_url: fields.callback_url,
    secret_env_names: fields.secret_env_names,
    enabled: fields.enabled,
  })
  .partial()
  .refine((b) => Object.keys(b).length > 0, { message: "send at least one field to change" });
export type UpdateSourceBody = z.infer<typeof UpdateSourceBody>;

export interface SourceWire {
  name: string;
  agent: string;
  description: string;
  prompt_template: string;
  input_mapping: Json;
  mode: TaskMode;
  require_approval: boolean;
  callback_url: string | null;
  /** Names of the environment variables holding the secrets (never the secrets). */
  secret_env_names: string[];
  /** How many of those variables hold a usable `whsec_` secret in this deployment (0: every delivery gets a 503). */
  secrets_set: number;
  enabled: boolean;
  /** Refused deliveries by reason (nothing else is kept of them). */
  refusals: Partial<Record<RefusalReason, number>>;
  refused_total: number;
  last_refused_at: string | null;
  url: string;
  created_at: string;
  updated_at: string;
}

type Refusal = { source: string; reason: RefusalReason; count: number | string; last_at: string };

function toWire(s: WebhookSource, refusals: Refusal[]): SourceWire {
  const mine = refusals.filter((r) => r.source === s.name);
  return {
    name: s.name,
    agent: s.agent_id,
    description: s.description,
    prompt_template: s.prompt_template,
    input_mapping: s.input_mapping,
    mode: s.mode,
    require_approval: s.require_approval,
    callback_url: s.callback_url,
    secret_env_names: s.secret_env_names,
    secrets_set: s.secret_env_names.filter((n) => !OWN_SECRETS.has(n) && isStandardWebhookSecret(process.env[n]?.trim() ?? "")).length,
    enabled: s.enabled,
    refusals: Object.fromEntries(mine.map((r) => [r.reason, Number(r.count)])),
    refused_total: mine.reduce((n, r) => n + Number(r.count), 0),
    last_refused_at: mine.reduce<string | null>((m, r) => (m === null || r.last_at > m ? r.last_at : m), null),
    url: `/api/webhooks/${s.name}`,
    created_at: s.created_at,
    updated_at: s.updated_at,
  };
}

/** Every source with its counters, plus the refusals of deliveries to names no source has (counted under '*'). */
export async function listWebhookSources(db: AdminClient): Promise<{ sources: SourceWire[]; unknown_source_refusals: number }> {
  const [{ data: sources, error }, { data: refusals, error: e2 }] = await Promise.all([
    db.from("webhook_sources").select("*").order("name"),
    db.from("webhook_refusals").select("source,reason,count,last_at"),
  ]);
  if (error || e2) throw new Error(`webhook sources read failed: ${(error ?? e2)!.message}`);
  const r = (refusals ?? []) as Refusal[];
  return {
    sources: (sources ?? []).map((s) => toWire(s, r)),
    unknown_source_refusals: r.filter((x) => x.source === "*").reduce((n, x) => n + Number(x.count), 0),
  };
}

export async function getWebhookSource(db: AdminClient, name: string) {
  const [{ data: s, error }, { data: refusals, error: e2 }, { data: changes, error: e3 }] = await Promise.all([
    db.from("webhook_sources").select("*").eq("name", name).maybeSingle(),
    db.from("webhook_refusals").select("source,reason,count,last_at").eq("source", name),
    db.from("webhook_source_changes").select("id,actor,action,changes,changed_at").eq("source", name).order("changed_at", { ascending: false }).order("id", { ascending: false }).limit(20),
  ]);
  if (error || e2 || e3) throw new Error(`webhook source read failed: ${(error ?? e2 ?? e3)!.message}`);
  if (!s) return null;
  return { ...toWire(s, (refusals ?? []) as Refusal[]), changes: changes ?? [] };
}

/** Creates (create=true) or changes a source through save_webhook_source; the audit row names `actor`. */
export async function saveWebhookSource(
  db: AdminClient,
  name: string,
  body: Omit<UpdateSourceBody, never> | Omit<CreateSourceBody, "name">,
  actor: string,
  create: boolean,
): Promise<{ source: SourceWire; change_id: number | null }> {
  const { agent, ...rest } = body as Record<string, unknown> & { agent?: string };
  const fieldsJson: Record<string, unknown> = { ...rest };
  if (agent !== undefined) fieldsJson["agent_id"] = agent;
  const { data, error } = await db.rpc("save_webhook_source", { p_name: name, p_fields: fieldsJson as Json, p_actor: actor, p_create: create });
  if (error) {
    if (error.code === "NSW02") throw new ApiError(404, "not_found", `No webhook source '${name}'`);
    if (error.code === "NSW03") throw new ApiError(409, "already_exists", `A webhook source named '${name}' exists already`, { field: "name" });
    if (error.code === "23503") {
      throw new ApiError(400, "invalid_request", `Invalid request body: agent: unknown agent '${agent}'`, [{ field: "agent", message: `unknown agent '${agent}'` }]);
    }
    // A check, a missing required value or a bad enum the schema above did not catch: still the caller's input.
    if (error.code === "23514" || error.code === "23502" || error.code === "22023" || error.code === "22P02") {
      throw new ApiError(400, "invalid_request", `Invalid request body: ${error.message}`);
    }
    throw new Error(`save_webhook_source failed: ${error.message}`);
  }
  const row = (Array.isArray(data) ? data[0] : data) as { source: WebhookSource; change_id: number | null } | undefined;
  if (!row) throw new Error("save_webhook_source returned no row");
  const { data: refusals } = await db.from("webhook_refusals").select("source,reason,count,last_at").eq("source", name);
  return { source: toWire(row.source, (refusals ?? []) as Refusal[]), change_id: row.change_id === null ? null : Number(row.change_id) };
}
