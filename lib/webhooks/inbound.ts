// Inbound webhooks (POST /api/webhooks/:source) on the Standard Webhooks convention, verified with the
// `standardwebhooks` library. A source is a row (webhook_sources); its secrets live in environment variables the
// row names, so they are never stored, returned or logged, and a rotation is "add the new variable, then drop the
// old one". Order of checks: source known and enabled (404), body size (413), signature headers and timestamp
// within 5 minutes (401), signature over the raw body under any active secret (401, constant time inside the
// library), JSON (400), mapping (422 naming the field). A delivery that passes becomes a task with the
// idempotency key `webhook:<source>:<webhook-id>`: create_task's unique index decides, so the same delivery any
// number of times — sequential or concurrent — makes one task, and every repeat is answered with its id.
// A refused delivery records nothing but a counter per (source, reason) that the console shows.
import { Webhook, WebhookVerificationError } from "standardwebhooks";
import type { AdminClient } from "@/lib/db/admin";
import type { Database, Json } from "@/lib/db/database.types";
import { isStandardWebhookSecret } from "@/lib/env";
import { readRawBody } from "@/lib/http/body";
import { ApiError } from "@/lib/http/errors";
import { assertStorable } from "@/lib/http/json-limits";
import type { CreateTaskBody } from "@/lib/tasks/schema";
import { MAX_PROMPT_CHARS } from "@/lib/tasks/schema";
import { submitTask } from "@/lib/tasks/submit";
import type { CreatedTask } from "@/lib/tasks/service";
import { OWN_SECRETS } from "./own-secrets";
import { MappingError, mapInput, renderTemplate } from "./template";

export const WEBHOOK_TOLERANCE_SECONDS = 5 * 60;
export const MAX_WEBHOOK_BYTES = 256 * 1024;
const SOURCE_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const WEBHOOK_ID = /^[\x21-\x7e]{1,200}$/;

export type WebhookSource = Database["public"]["Tables"]["webhook_sources"]["Row"];
export type RefusalReason = Database["public"]["Tables"]["webhook_refusals"]["Row"]["reason"];

/** A refused delivery: the API error it answers with, and the counter it bumps. */
export class WebhookRefusal extends ApiError {
  constructor(
    readonly reason: RefusalReason,
    readonly source: string,
    status: number,
    code: string,
    message: string,
    details?: unknown,
  ) {
    super(status, code, message, details);
  }
}

export interface AcceptedWebhook extends CreatedTask {
  webhookId: string;
}

export async function receiveWebhook(db: AdminClient, sourceName: string, req: Request, now = Date.now()): Promise<AcceptedWebhook> {
  if (!SOURCE_NAME.test(sourceName)) throw new WebhookRefusal("unknown_source", "*", 404, "not_found", "No such webhook source");
  const { data: source, error } = await db.from("webhook_sources").select("*").eq("name", sourceName).maybeSingle();
  if (error) throw new Error(`webhook source lookup failed: ${error.message}`);
  // Unknown names count under '*': a caller cannot create counter rows by inventing names.
  if (!source) throw new WebhookRefusal("unknown_source", "*", 404, "not_found", `No webhook source '${sourceName}'`);
  if (!source.enabled) throw new WebhookRefusal("disabled", source.name, 404, "not_found", `No webhook source '${sourceName}'`);

  let raw: string;
  try {
    raw = await readRawBody(req, MAX_WEBHOOK_BYTES);
  } catch (err) {
    if (err instanceof ApiError && err.status === 413) throw new WebhookRefusal("too_large", source.name, 413, err.code, err.message);
    throw err;
  }

  const webhookId = verify(source, req.headers, raw, now);

  let payload: unknown;
  try {
    payload = JSON.parse(raw);
  } catch {
    throw new WebhookRefusal("invalid_json", source.name, 400, "invalid_json", "The webhook body is not valid JSON");
  }
  try {
    assertStorable(payload); // NUL, lone surrogates, depth, key count: what Postgres cannot store
  } catch (err) {
    if (err instanceof ApiError) throw new WebhookRefusal("invalid_json", source.name, 400, err.code, err.message, err.details);
    throw err;
  }

  let body: CreateTaskBody;
  try {
    body = taskFor(source, payload, webhookId);
  } catch (err) {
    if (err instanceof MappingError) {
      const first = err.problems[0]!;
      throw new WebhookRefusal("unprocessable", source.name, 422, "unprocessable_payload", `The payload cannot be mapped: ${first.field}: ${first.message}`, err.problems);
    }
    throw err;
  }
  // The route relays the start event after its response (docs/outbox.md).
  const task = await submitTask(db, body, null, `webhook:${source.name}:${webhookId}`, { relay: "none" });
  return { ...task, webhookId };
}

/** Checks the Standard Webhooks headers and signature; returns the webhook-id. */
function verify(source: WebhookSource, headers: Headers, raw: string, now: number): string {
  const id = headers.get("webhook-id");
  const timestamp = headers.get("webhook-timestamp");
  const signature = headers.get("webhook-signature");
  if (!id || !timestamp || !signature) {
    throw new WebhookRefusal("missing_headers", source.name, 401, "missing_signature", "Send webhook-id, webhook-timestamp and webhook-signature (Standard Webhooks)");
  }
  if (!WEBHOOK_ID.test(id)) {
    throw new WebhookRefusal("missing_headers", source.name, 401, "invalid_webhook_id", "webhook-id must be 1 to 200 printable ASCII characters");
  }
  const t = /^\d{1,12}$/.test(timestamp) ? Number(timestamp) : NaN;
  if (!Number.isFinite(t) || Math.abs(now / 1000 - t) > WEBHOOK_TOLERANCE_SECONDS) {
    throw new WebhookRefusal(
      "stale_timestamp",
      source.name,
      401,
      "timestamp_out_of_tolerance",
      `webhook-timestamp must be within ${WEBHOOK_TOLERANCE_SECONDS} seconds of the receiver's clock (unix seconds)`,
    );
  }
  const secrets = activeSecrets(source);
  if (secrets.length === 0) {
    console.error(`[webhooks] source ${source.name} has no usable secret: set ${source.secret_env_names.join(" or ")} to a whsec_ secret`);
    throw new ApiError(503, "source_misconfigured", "This webhook source cannot verify deliveries right now", undefined, { "Retry-After": "60" });
  }
  const signed = { "webhook-id": id, "webhook-timestamp": timestamp, "webhook-signature": signature };
  for (const secret of secrets) {
    try {
      new Webhook(secret).verify(raw, signed, { jsonParse: false });
      return id;
    } catch (err) {
      if (!(err instanceof WebhookVerificationError)) throw err;
    }
  }
  throw new WebhookRefusal("bad_signature", source.name, 401, "invalid_signature", "The webhook signature does not match (Standard Webhooks v1)");
}

/** The source's secrets that are set, in the order the row names them (rotation: old and new both verify). */
function activeSecrets(source: WebhookSource): string[] {
  return source.secret_env_names
    .filter((name) => !OWN_SECRETS.has(name))
    .map((name) => process.env[name]?.trim() ?? "")
    .filter(isStandardWebhookSecret);
}

function taskFor(source: WebhookSource, payload: unknown, webhookId: string): CreateTaskBody {
  const scope = { payload, webhook: { id: webhookId, source: source.name } };
  const prompt = renderTemplate(source.prompt_template, scope).trim();
  if (!prompt) throw new MappingError([{ field: "payload", message: "the prompt template rendered an empty prompt" }]);
  if (prompt.length > MAX_PROMPT_CHARS) throw new MappingError([{ field: "payload", message: `the prompt would exceed ${MAX_PROMPT_CHARS} characters` }]);
  const mapped = mapInput((source.input_mapping ?? {}) as Record<string, unknown>, scope);
  const input = mapped !== null && typeof mapped === "object" && !Array.isArray(mapped) ? (mapped as Record<string, Json>) : { payload: mapped };
  return {
    agent: source.agent_id,
    prompt,
    input,
    mode: source.mode,
    require_approval: source.require_approval,
    ...(source.callback_url ? { callback_url: source.callback_url } : {}),
  };
}

/** Counts a refused delivery (best effort: the refusal is answered either way). */
export async function noteRefusal(db: AdminClient, refusal: WebhookRefusal): Promise<void> {
  const { error } = await db.rpc("note_webhook_refusal", { p_source: refusal.source, p_reason: refusal.reason });
  if (error) console.error(`[webhooks] could not count a refusal: ${error.message}`);
}
