// Agent settings as an operator sees and changes them (GET/PATCH /api/agents, the console's Agents page): the row,
// today's spend against the cap, the concurrency in use, and changes made by one audited Postgres function
// (update_agent_settings writes the change and its audit row in one statement, under the agent's row lock).
import { z } from "zod";
import type { AdminClient } from "@/lib/db/admin";
import type { Json, Tables } from "@/lib/db/database.types";
import { spendByAgentDay } from "@/lib/budget";
import { PRICES } from "@/lib/llm/prices";
import { TASK_MODES, type TaskMode } from "@/lib/tasks/schema";

export const AgentId = z.string().regex(/^[a-z][a-z0-9_-]{1,39}$/, "must be an agent id");

/** True for an IANA time zone name this runtime knows ("Europe/Berlin", "UTC"). Postgres checks it again. */
export function isTimeZone(tz: string): boolean {
  if (!/^[A-Za-z0-9_+\-/]{1,64}$/.test(tz)) return false;
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

export const MODELS = Object.keys(PRICES) as [string, ...string[]];
const int = (min: number, max: number, what: string) =>
  z
    .number({ error: `${what} must be a number` })
    .int(`${what} must be a whole number`)
    .min(min, `${what} must be at least ${min}`)
    .max(max, `${what} must be at most ${max}`);

/** PATCH /api/agents/:id — every field optional, at least one; the ranges are the table's own checks. */
export const AgentPatch = z
  .strictObject({
    /** The hard daily cap in micro-dollars ($2.00 = 2000000). */
    daily_budget_micros: int(0, 1_000_000_000_000, "daily_budget_micros"),
    max_turns: int(1, 200, "max_turns"),
    max_tokens: int(1, 64_000, "max_tokens"),
    wall_clock_seconds: int(10, 86_400, "wall_clock_seconds"),
    concurrency: int(1, 100, "concurrency"),
    model: z.enum(MODELS, { error: `model must be one of ${MODELS.join(", ")}` }),
    requires_approval: z.boolean({ error: "requires_approval must be true or false" }),
    approval_timeout_seconds: int(60, 604_800, "approval_timeout_seconds"),
    approval_auto_action: z.enum(["reject", "approve"], { error: "approval_auto_action must be reject or approve" }),
    budget_timezone: z.string().refine(isTimeZone, "budget_timezone must be an IANA time zone such as Europe/Berlin"),
    enabled: z.boolean({ error: "enabled must be true or false" }),
    /** The mode of a task that names none: now, batch, or auto (batch while the task's deadline leaves room). */
    default_mode: z.enum(TASK_MODES, { error: "default_mode must be now, batch or auto" }),
  })
  .partial()
  .refine((p) => Object.keys(p).length > 0, { message: "send at least one field to change" });
export type AgentPatch = z.infer<typeof AgentPatch>;

export type AgentRow = Tables<"agents">;

export interface AgentWire {
  id: string;
  display_name: string;
  description: string;
  enabled: boolean;
  model: string;
  tools: string[];
  limits: { max_turns: number; max_tokens: number; wall_clock_seconds: number; concurrency: number };
  budget: { daily_budget_micros: number; daily_budget_usd: number; timezone: string };
  approval: { requires_approval: boolean; timeout_seconds: number; auto_action: string };
  /** The mode of a task that names none. */
  default_mode: TaskMode;
  /** The agent's current budget day (its own time zone): committed = settled + reserved for calls in flight. */
  today: { day: string; committed_micros: number; settled_micros: number; committed_usd: number; batch_saving_micros: number };
  /** Tasks holding one of the agent's concurrency slots right now (live leases). */
  concurrency_in_use: number;
  updated_at: string;
}

const usd = (micros: number) => micros / 1_000_000;

/** The calendar day (YYYY-MM-DD) in a time zone. */
export function localDay(timeZone: string, at: Date): string {
  try {
    return new Intl.DateTimeFormat("en-CA", { timeZone, year: "numeric", month: "2-digit", day: "2-digit" }).format(at);
  } catch {
    return at.toISOString().slice(0, 10);
  }
}

export function toAgentWire(a: AgentRow, today: AgentWire["today"], inUse: number): AgentWire {
  const cap = Number(a.daily_budget_micros);
  return {
    id: a.id,
    display_name: a.display_name,
    description: a.description,
    enabled: a.enabled,
    model: a.model,
    tools: a.tools,
    limits: { max_turns: a.max_turns, max_tokens: a.max_tokens, wall_clock_seconds: a.wall_clock_seconds, concurrency: a.concurrency },
    budget: { daily_budget_micros: cap, daily_budget_usd: usd(cap), timezone: a.budget_timezone },
    approval: { requires_approval: a.requires_approval, timeout_seconds: a.approval_timeout_seconds, auto_action: a.approval_auto_action },
    default_mode: a.default_mode,
    today,
    concurrency_in_use: inUse,
    updated_at: a.updated_at,
  };
}

const AGENT_COLUMNS =
  "id,display_name,description,enabled,model,tools,max_turns,max_tokens,wall_clock_seconds,concurrency,daily_budget_micros,budget_timezone,requires_approval,approval_timeout_seconds,approval_auto_action,default_mode,updated_at";

/** Every agent (or one) with today's spend and slots in use: three reads, whatever the number of agents. */
export async function listAgents(db: AdminClient, opts: { id?: string; now?: Date } = {}): Promise<AgentWire[]> {
  const now = opts.now ?? new Date();
  let q = db.from("agents").select(AGENT_COLUMNS).order("id");
  if (opts.id) q = q.eq("id", opts.id);
  const { data, error } = await q;
  if (error) throw new Error(`agents read failed: ${error.message}`);
  const agents = (data ?? []) as unknown as AgentRow[];
  if (agents.length === 0) return [];
  const days = agents.map((a) => localDay(a.budget_timezone, now)).sort();
  const [spend, slots] = await Promise.all([
    spendByAgentDay(db, { agentId: opts.id, from: days[0], to: days[days.length - 1] }),
    db.from("agent_slots").select("agent_id").gt("lease_until", now.toISOString()),
  ]);
  if (slots.error) throw new Error(`agent slots read failed: ${slots.error.message}`);
  const inUse = new Map<string, number>();
  for (const s of slots.data ?? []) inUse.set(s.agent_id, (inUse.get(s.agent_id) ?? 0) + 1);
  return agents.map((a) => {
    const day = localDay(a.budget_timezone, now);
    const row = spend.find((r) => r.agent_id === a.id && String(r.window_start).slice(0, 10) === day);
    const committed = row ? Number(row.committed_micros) : 0;
    return toAgentWire(
      a,
      {
        day,
        committed_micros: committed,
        settled_micros: row ? Number(row.settled_micros) : 0,
        committed_usd: usd(committed),
        batch_saving_micros: row ? Number(row.batch_saving_micros) : 0,
      },
      inUse.get(a.id) ?? 0,
    );
  });
}

export async function getAgent(db: AdminClient, id: string, now?: Date): Promise<AgentWire | null> {
  if (!AgentId.safeParse(id).success) return null;
  return (await listAgents(db, { id, now }))[0] ?? null;
}

export type UpdateResult =
  | { outcome: "updated" | "unchanged"; agent: AgentWire; change_id: number | null }
  | { outcome: "not_found" };

/** An error from update_agent_settings the caller can show (22023: a value Postgres refused). */
export class AgentSettingsError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "AgentSettingsError";
  }
}

/** Changes an agent's settings and audits the change in the same Postgres statement. `actor`: who (api:<key id>, console:operator). */
export async function updateAgentSettings(db: AdminClient, id: string, patch: AgentPatch, actor: string): Promise<UpdateResult> {
  if (!AgentId.safeParse(id).success) return { outcome: "not_found" };
  const { data, error } = await db.rpc("update_agent_settings", { p_agent_id: id, p_patch: patch as Json, p_actor: actor });
  if (error) {
    if (error.code === "NSG01") return { outcome: "not_found" };
    // 22023 ours, 23514 a table check, 22P02/22003 a value Postgres cannot take: the caller's input.
    if (["22023", "23514", "22P02", "22003"].includes(error.code ?? "")) throw new AgentSettingsError(error.code!, error.message);
    throw new Error(`update_agent_settings failed: ${error.message}`);
  }
  const row = (data as { agent: Json; change_id: number | null }[] | null)?.[0];
  if (!row) throw new Error("update_agent_settings returned no row");
  const agent = await getAgent(db, id);
  if (!agent) return { outcome: "not_found" };
  return { outcome: row.change_id === null ? "unchanged" : "updated", agent, change_id: row.change_id };
}

export interface AgentChange {
  id: number;
  agent_id: string;
  actor: string;
  changes: Record<string, { from: Json; to: Json }>;
  changed_at: string;
}

/** The audit trail of an agent's settings, newest first. */
export async function listAgentChanges(db: AdminClient, id: string, limit = 20): Promise<AgentChange[]> {
  const { data, error } = await db
    .from("agent_changes")
    .select("id,agent_id,actor,changes,changed_at")
    .eq("agent_id", id)
    .order("changed_at", { ascending: false })
    .order("id", { ascending: false })
    .limit(limit);
  if (error) throw new Error(`agent changes read failed: ${error.message}`);
  return (data ?? []) as unknown as AgentChange[];
}
