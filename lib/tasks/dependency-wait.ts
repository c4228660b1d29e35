// A task whose dependency is behind an open circuit breaker waits (`waiting_dependency`) instead of failing; its
// status_reason names the dependency and when it is tried again.
import type { AdminClient } from "@/lib/db/admin";

export async function markWaitingDependency(db: AdminClient, taskId: string, reason: string): Promise<void> {
  const { error } = await db
    .from("tasks")
    .update({ status: "waiting_dependency", status_reason: reason })
    .eq("id", taskId)
    // A task that waited for money or the rate limit stays in that status until its call is admitted.
    .in("status", ["running", "queued", "waiting_budget", "waiting_rate_limit", "waiting_dependency"]);
  if (error) throw new Error(`could not mark task ${taskId} waiting_dependency: ${error.message}`);
}

/** Back to `running` after the wait (a no-op for a task that was not waiting for a dependency). */
export async function resumeDependencyWait(db: AdminClient, taskId: string): Promise<void> {
  const { error } = await db.rpc("resume_dependency_wait", { p_task_id: taskId });
  if (error) throw new Error(`resume_dependency_wait failed: ${error.message}`);
}

export function dependencyWaitReason(dep: string, retryAt: string, lastError: string | null, transient = false): string {
  const why = lastError ? ` (${lastError.replace(/\.$/, "")})` : "";
  // transient: the call failed like an outage but the breaker is still closed — a short backoff, not an attempt.
  if (transient) return `waiting for ${dep}, whose last call failed${why}; trying again at ${retryAt} (not counted as a retry)`;
  return `waiting for ${dep}, which is down${why}; next try at ${retryAt}`;
}
