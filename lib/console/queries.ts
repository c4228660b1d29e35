// The console's reads. Each takes the caller's Session as proof that the request was authenticated: a page cannot
// reach data without first calling requireSession(). All reads use the server's admin client; nothing here is
// sent to the browser except what the pages render.
import type { AdminClient } from "@/lib/db/admin";
import { listPendingApprovals, listTaskApprovals, type ApprovalRow } from "@/lib/approvals";
import { spendByAgentDay } from "@/lib/budget";
import { ListTasksQuery, TASK_STATUSES, TaskId, type TaskStatus } from "@/lib/tasks/schema";
import { getTask, listTasks, type TaskWire } from "@/lib/tasks/service";
import type { Session } from "./session";

export const PAGE_SIZE = 25;

export interface AgentSummary {
  id: string;
  displayName: string;
  enabled: boolean;
  capMicros: number;
  /** Reserved (in flight) + settled today, in the agent's own budget day. */
  spentMicros: number;
  /** The agent's local calendar day the figure belongs to (YYYY-MM-DD). */
  day: string;
  /** What the Batches API's discount saved today (full price − paid). */
  batchSavingMicros: number;
}

export interface DashboardFilters {
  status?: TaskStatus;
  agent?: string;
  cursor?: string;
}

/** Query-string filters, invalid values dropped rather than failing the page. */
export function parseFilters(params: Record<string, string | string[] | undefined>): DashboardFilters {
  const one = (k: string) => (typeof params[k] === "string" ? (params[k] as string) : undefined);
  const status = one("status");
  const agent = one("agent");
  const cursor = one("cursor");
  return {
    status: status && (TASK_STATUSES as readonly string[]).includes(status) ? (status as TaskStatus) : undefined,
    agent: agent && /^[a-z][a-z0-9_-]{1,39}$/.test(agent) ? agent : undefined,
    cursor: cursor && cursor.length <= 200 ? cursor : undefined,
  };
}

export async function dashboardTasks(
  _session: Session,
  db: AdminClient,
  f: DashboardFilters,
): Promise<{ tasks: TaskWire[]; nextCursor: string | null }> {
  const q = ListTasksQuery.parse({ status: f.status, agent: f.agent, cursor: f.cursor, limit: PAGE_SIZE });
  try {
    const page = await listTasks(db, q);
    return { tasks: page.tasks, nextCursor: page.next_cursor };
  } catch (e) {
    // A hand-edited cursor that does not decode: show the first page instead of an error.
    if (f.cursor && e instanceof Error && /cursor/i.test(e.message)) return dashboardTasks(_session, db, { ...f, cursor: undefined });
    throw e;
  }
}

/** The calendar day (YYYY-MM-DD) in a time zone. */
export function localDay(timeZone: string, at: Date): string {
  try {
    return new Intl.DateTimeFormat("en-CA", { timeZone, year: "numeric", month: "2-digit", day: "2-digit" }).format(at);
  } catch {
    return at.toISOString().slice(0, 10);
  }
}

/**
 * Each agent's spend today against its daily cap, from the budget ledger (`spend_by_agent_day`): committed =
 * reserved + settled in the agent's current budget window, which is what reserve_budget enforces the cap on.
 */
export async function agentSpendToday(_session: Session, db: AdminClient, now = new Date()): Promise<AgentSummary[]> {
  const { data, error } = await db
    .from("agents")
    .select("id,display_name,enabled,daily_budget_micros,budget_timezone")
    .order("id");
  if (error) throw new Error(`agents read failed: ${error.message}`);
  const agents = data.map((a) => ({ ...a, day: localDay(a.budget_timezone, now) }));
  if (agents.length === 0) return [];
  const days = agents.map((a) => a.day).sort();
  const rows = await spendByAgentDay(db, { from: days[0], to: days[days.length - 1] });
  return agents.map((a) => {
    const row = rows.find((r) => r.agent_id === a.id && String(r.window_start).slice(0, 10) === a.day);
    return {
      id: a.id,
      displayName: a.display_name,
      enabled: a.enabled,
      capMicros: Number(a.daily_budget_micros),
      spentMicros: row ? Number(row.committed_micros) : 0,
      day: a.day,
      batchSavingMicros: row ? Number(row.batch_saving_micros) : 0,
    };
  });
}

export interface StepRow {
  stepId: string;
  kind: string;
  status: string;
  startedAt: string;
  finishedAt: string | null;
  durationMs: number | null;
  inputTokens: number;
  outputTokens: number;
  costMicros: number;
  detail: unknown;
}

export interface TaskDetail {
  task: TaskWire;
  steps: StepRow[];
}

export async function taskDetail(_session: Session, db: AdminClient, id: string): Promise<TaskDetail | null> {
  if (!TaskId.safeParse(id).success) return null;
  const task = await getTask(db, id);
  if (!task) return null;
  const { data, error } = await db
    .from("task_steps")
    .select("step_id,kind,status,detail,input_tokens,output_tokens,cost_micros,started_at,finished_at")
    .eq("task_id", id)
    .order("started_at", { ascending: true })
    .order("id", { ascending: true })
    .limit(1000);
  if (error) throw new Error(`task steps read failed: ${error.message}`);
  const steps = data.map((s) => ({
    stepId: s.step_id,
    kind: s.kind,
    status: s.status,
    startedAt: s.started_at,
    finishedAt: s.finished_at,
    durationMs: stepDuration(s.detail, s.started_at, s.finished_at),
    inputTokens: s.input_tokens,
    outputTokens: s.output_tokens,
    costMicros: Number(s.cost_micros),
    detail: s.detail,
  }));
  return { task, steps };
}

/** A step's own measurement (detail.duration_ms, taken around the model or tool call inside the step) when it
 * recorded one; otherwise the row's started → finished span, which is ~0 for a step recorded only on completion. */
function stepDuration(detail: unknown, startedAt: string, finishedAt: string | null): number | null {
  const measured = detail && typeof detail === "object" ? (detail as { duration_ms?: unknown }).duration_ms : undefined;
  if (typeof measured === "number" && Number.isFinite(measured) && measured >= 0) return measured;
  return finishedAt ? Date.parse(finishedAt) - Date.parse(startedAt) : null;
}

export async function enabledAgents(_session: Session, db: AdminClient): Promise<{ id: string; displayName: string; requiresApproval: boolean }[]> {
  const { data, error } = await db.from("agents").select("id,display_name,requires_approval").eq("enabled", true).order("id");
  if (error) throw new Error(`agents read failed: ${error.message}`);
  return data.map((a) => ({ id: a.id, displayName: a.display_name, requiresApproval: a.requires_approval }));
}

// ------------------------------------------------------------------------------------------ morning summary

export const OVERNIGHT_HOURS = 16;

export interface MorningSummary {
  since: string;
  completed: number;
  failed: number;
  waitingBudget: number;
  waitingApproval: number;
  spentMicros: number;
}

/** The morning summary: what finished, failed and spent in the last 16 hours (from 16:00 or so the day before
 * to a morning look), and what waits right now. */
export async function morningSummary(_session: Session, db: AdminClient, now = new Date()): Promise<MorningSummary> {
  const since = new Date(now.getTime() - OVERNIGHT_HOURS * 3_600_000).toISOString();
  const count = async (build: (q: ReturnType<typeof base>) => ReturnType<typeof base>) => {
    const { count: n, error } = await build(base());
    if (error) throw new Error(`summary count failed: ${error.message}`);
    return n ?? 0;
  };
  const base = () => db.from("tasks").select("id", { count: "exact", head: true });
  const [completed, failed, waitingBudget, waitingApproval, spent] = await Promise.all([
    count((q) => q.eq("status", "completed").gte("finished_at", since)),
    count((q) => q.in("status", ["failed", "stopped"]).gte("finished_at", since)),
    count((q) => q.eq("status", "waiting_budget")),
    count((q) => q.eq("status", "waiting_approval")),
    spentSince(db, since),
  ]);
  return { since, completed, failed, waitingBudget, waitingApproval, spentMicros: spent };
}

/** Settled spend since a time, from the budget ledger (the money actually charged by finished model calls). */
async function spentSince(db: AdminClient, since: string): Promise<number> {
  const { data, error } = await db.rpc("settled_spend_since", { p_since: since });
  if (error) throw new Error(`spend read failed: ${error.message}`);
  return Number(data ?? 0);
}

// ------------------------------------------------------------------------------------------------ approvals

export interface PendingApproval {
  id: string;
  taskId: string;
  agent: string | null;
  prompt: string | null;
  stage: string;
  revision: number;
  draft: unknown;
  requestedAt: string;
  expiresAt: string;
  autoAction: string;
}

/** Visible pending approvals, oldest first, with their task's agent and prompt. */
export async function reviewQueue(_session: Session, db: AdminClient, limit = 100): Promise<PendingApproval[]> {
  const rows = await listPendingApprovals(db, limit);
  if (rows.length === 0) return [];
  const { data, error } = await db
    .from("tasks")
    .select("id,agent_id,prompt")
    .in("id", [...new Set(rows.map((r) => r.task_id))]);
  if (error) throw new Error(`task read failed: ${error.message}`);
  const byId = new Map(data.map((t) => [t.id, t]));
  return rows.map((r) => ({
    id: r.id,
    taskId: r.task_id,
    agent: byId.get(r.task_id)?.agent_id ?? null,
    prompt: byId.get(r.task_id)?.prompt ?? null,
    stage: r.stage,
    revision: r.revision,
    draft: r.draft,
    requestedAt: r.requested_at,
    expiresAt: r.expires_at,
    autoAction: r.auto_action,
  }));
}

export async function approvalHistory(_session: Session, db: AdminClient, taskId: string): Promise<ApprovalRow[]> {
  if (!TaskId.safeParse(taskId).success) return [];
  return listTaskApprovals(db, taskId);
}
