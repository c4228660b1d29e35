// Graceful degradation for pipelines: the research stage's results are cached by normalised topic (with the date and
// the sources used), and when research cannot run — its model's breaker is open, it failed after its retries, or the
// research agent's budget is spent for the day — the pipeline continues from the freshest cached research and says so.
import type { AdminClient } from "@/lib/db/admin";
import type { Json } from "@/lib/db/database.types";
import { dependency } from "@/lib/breakers";
import { worstCaseMicros } from "@/lib/budget";

/** The cache key of a topic: lower case, punctuation dropped, whitespace collapsed. */
export function normaliseTopic(topic: string): string {
  return topic
    .normalize("NFKC")
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s]+/gu, " ")
    .replace(/\s+/g, " ")
    .trim()
    .slice(0, 10_000);
}

export interface CachedResearch {
  text: string;
  sources: string[];
  cached_at: string;
  task_id: string | null;
}

/** Keeps a finished research result (the newest per topic wins). */
export async function saveResearch(
  db: AdminClient,
  r: { topic: string; text: string; taskId: string; pipelineId: string },
): Promise<void> {
  const key = normaliseTopic(r.topic);
  if (!key || !r.text.trim()) return;
  const { data: steps } = await db.from("task_steps").select("detail").eq("task_id", r.taskId).eq("kind", "tool");
  const sources = [...new Set((steps ?? []).map((s) => (s.detail as { url?: unknown } | null)?.url).filter((u): u is string => typeof u === "string"))].slice(0, 50);
  const { error } = await db.from("research_cache").upsert(
    { topic_key: key, topic: r.topic.slice(0, 10_000), text: r.text.slice(0, 200_000), sources: sources as Json[], task_id: r.taskId, pipeline_id: r.pipelineId, cached_at: new Date().toISOString() },
    { onConflict: "topic_key" },
  );
  if (error) throw new Error(`research cache write failed: ${error.message}`);
}

export async function freshestResearch(db: AdminClient, topic: string): Promise<CachedResearch | null> {
  const { data, error } = await db.from("research_cache").select("text,sources,cached_at,task_id").eq("topic_key", normaliseTopic(topic)).maybeSingle();
  if (error) throw new Error(`research cache read failed: ${error.message}`);
  return data ? { text: data.text, sources: (data.sources as string[]) ?? [], cached_at: data.cached_at, task_id: data.task_id } : null;
}

/** Why research cannot run right now (its model's breaker is open, or its agent's budget is spent today), or null. */
export async function researchBlocked(db: AdminClient, agentId: string, now: Date = new Date()): Promise<string | null> {
  const { data: agent, error } = await db.from("agents").select("model,max_tokens,daily_budget_micros,budget_timezone").eq("id", agentId).single();
  if (error) throw new Error(`agent ${agentId} read failed: ${error.message}`);
  const dep = dependency.claude(agent.model);
  const { data: b } = await db.from("breakers").select("state,next_probe_at,last_error").eq("dependency", dep).maybeSingle();
  // Open with its probe still ahead (or probing): down. Open with the probe due: research may run (it probes).
  if (b && (b.state === "half_open" || (b.state === "open" && b.next_probe_at && Date.parse(b.next_probe_at) > now.getTime()))) {
    return `${dep} is down${b.last_error ? ` (${b.last_error.replace(/\.$/, "")})` : ""}`;
  }
  const today = new Intl.DateTimeFormat("en-CA", { timeZone: agent.budget_timezone, year: "numeric", month: "2-digit", day: "2-digit" }).format(now);
  const { data: w } = await db.from("budget_windows").select("reserved_micros,settled_micros,cap_micros").eq("agent_id", agentId).eq("window_start", today).maybeSingle();
  if (w) {
    const remaining = Number(agent.daily_budget_micros) - Number(w.reserved_micros) - Number(w.settled_micros);
    if (remaining < worstCaseMicros(agent.model, { inputTokens: 2_000, maxTokens: agent.max_tokens })) return `${agentId}'s daily budget is spent`;
  }
  return null;
}

/** The sentence the report carries when it was built from cached research. */
export function degradedNote(d: { reason: string; cached_at: string }): string {
  return `Note: this was built from cached research of ${d.cached_at.slice(0, 10)} (${d.cached_at}), because fresh research could not run: ${d.reason}.`;
}
