// Circuit breakers, one per upstream dependency, shared by every instance: the state and its transitions live in
// Postgres (breaker_acquire / breaker_record, supabase/migrations/20261129120100_dead_letters_breakers.sql), because on
// Vercel every invocation is another process. Closed: calls go out. Open: calls fail fast with a `circuit_open` answer
// carrying when to come back. After the cool-down exactly one caller probes (half-open, compare-and-set); its success
// closes the breaker, its failure re-opens it with a doubled cool-down. The operator hears once when a breaker opens
// and once when it closes.
import type { AdminClient } from "@/lib/db/admin";
import { env } from "@/lib/env";
import { notify } from "@/lib/notifications";

export type BreakerState = "closed" | "open" | "half_open";

/** Dependency names: one breaker each. */
export const dependency = {
  claude: (model: string) => `claude:${model}`,
  claudeBatches: () => "claude-batches",
  webFetch: (host: string) => `web_fetch:${host.toLowerCase()}`,
  email: () => "resend",
  slack: () => "slack",
  telegram: () => "telegram",
  callback: (host: string) => `callback:${host.toLowerCase()}`,
};

export type Gate =
  | { role: "call" | "probe" }
  | { role: "refused"; state: BreakerState; retryAt: string; openedAt: string | null; lastError: string | null };

/** The error a caller gets while the breaker is open; `nextProbeAt` says when the dependency is tried again. */
export class CircuitOpenError extends Error {
  readonly code = "circuit_open";
  constructor(
    readonly dependency: string,
    readonly nextProbeAt: string,
  ) {
    super(`circuit_open: ${dependency} is down; next probe at ${nextProbeAt}`);
    this.name = "CircuitOpenError";
  }
}

/** How long a probe may take before another caller may probe instead (its process may have died). */
function probeLeaseSeconds(): number {
  return Math.ceil(env().NIGHTSHIFT_MODEL_TIMEOUT_MS / 1000) + 30;
}

/** May a call to `dep` go out now? */
export async function acquireBreaker(db: AdminClient, dep: string, now: Date = new Date()): Promise<Gate> {
  const { data, error } = await db.rpc("breaker_acquire", { p_dependency: dep, p_now: now.toISOString(), p_probe_lease_seconds: probeLeaseSeconds() });
  if (error) throw new Error(`breaker_acquire failed: ${error.message}`);
  const row = data?.[0];
  if (!row) throw new Error("breaker_acquire returned no row");
  if (row.role === "refused") {
    return { role: "refused", state: row.state as BreakerState, retryAt: row.retry_at!, openedAt: row.opened_at, lastError: row.last_error };
  }
  return { role: row.role as "call" | "probe" };
}

export interface Recorded {
  transition: "none" | "opened" | "reopened" | "closed";
  state: BreakerState;
  nextProbeAt: string | null;
  openedAt: string | null;
}

/**
 * Records a call's outcome and tells the operator about an opening or a closing (once each: the notice's key is the
 * breaker and the moment it opened). `outage`: the failure says the other side is down (lib/failures.ts).
 */
export async function recordBreaker(
  db: AdminClient,
  dep: string,
  outcome: { success: true } | { success: false; outage: boolean; error: string },
  now: Date = new Date(),
): Promise<Recorded> {
  const e = env();
  const { data, error } = await db.rpc("breaker_record", {
    p_dependency: dep,
    p_success: outcome.success,
    p_outage: outcome.success ? false : outcome.outage,
    p_error: outcome.success ? (null as unknown as string) : outcome.error,
    p_now: now.toISOString(),
    p_threshold: e.NIGHTSHIFT_BREAKER_THRESHOLD,
    p_base_cooldown_seconds: e.NIGHTSHIFT_BREAKER_COOLDOWN_S,
    p_max_cooldown_seconds: e.NIGHTSHIFT_BREAKER_MAX_COOLDOWN_S,
  });
  if (error) throw new Error(`breaker_record failed: ${error.message}`);
  const row = data?.[0];
  if (!row) throw new Error("breaker_record returned no row");
  const r: Recorded = { transition: row.transition as Recorded["transition"], state: row.state as BreakerState, nextProbeAt: row.next_probe_at, openedAt: row.opened_at };
  if (r.transition === "opened" && r.openedAt) {
    await notify(db, {
      kind: "dependency_down",
      dedupeKey: `breaker_opened:${dep}:${r.openedAt}`,
      title: `${dep} is down: its circuit breaker opened`,
      body: `${e.NIGHTSHIFT_BREAKER_THRESHOLD} calls in a row failed (last: ${outcome.success ? "" : outcome.error}). Work that needs ${dep} waits instead of failing; the next probe is at ${r.nextProbeAt}.`,
      link: "/failed",
    }).catch((err: unknown) => console.warn(`[breakers] could not notify the opening of ${dep}: ${(err as Error).message}`));
  } else if (r.transition === "closed" && r.openedAt) {
    await notify(db, {
      kind: "dependency_recovered",
      dedupeKey: `breaker_closed:${dep}:${r.openedAt}`,
      title: `${dep} is back: its circuit breaker closed`,
      body: `${dep} answered again (down since ${r.openedAt}). Waiting work carries on.`,
      link: "/failed",
    }).catch((err: unknown) => console.warn(`[breakers] could not notify the closing of ${dep}: ${(err as Error).message}`));
  }
  return r;
}

/**
 * Runs `call` behind the breaker of `dep`: refused at once (CircuitOpenError) while it is open, and its outcome
 * recorded. For side calls (notification channels, callbacks, web_fetch hosts); agent turns use the gate directly so
 * that an open breaker becomes a durable wait instead of an error.
 */
export async function withBreaker<T>(
  db: AdminClient,
  dep: string,
  call: () => Promise<T>,
  classify: (err: unknown) => { outage: boolean; summary: string },
  now: () => Date = () => new Date(),
): Promise<T> {
  const gate = await acquireBreaker(db, dep, now());
  if (gate.role === "refused") throw new CircuitOpenError(dep, gate.retryAt);
  let value: T;
  try {
    value = await call();
  } catch (err) {
    const c = classify(err);
    await recordBreaker(db, dep, { success: false, outage: c.outage, error: c.summary }, now());
    throw err;
  }
  await recordBreaker(db, dep, { success: true }, now());
  return value;
}

export interface BreakerView {
  dependency: string;
  state: BreakerState;
  since: string;
  consecutive_failures: number;
  opened_at: string | null;
  next_probe_at: string | null;
  cooldown_seconds: number;
  last_error: string | null;
  last_error_at: string | null;
  last_success_at: string | null;
}

/** Every breaker that has ever seen a failure, worst first (open, half-open, closed), for the console and the API. */
export async function listBreakers(db: AdminClient): Promise<BreakerView[]> {
  const { data, error } = await db
    .from("breakers")
    .select("dependency,state,state_since,consecutive_failures,opened_at,next_probe_at,cooldown_seconds,last_error,last_error_at,last_success_at")
    .order("dependency");
  if (error) throw new Error(`breaker list failed: ${error.message}`);
  const rank: Record<string, number> = { open: 0, half_open: 1, closed: 2 };
  return data
    .map((b) => ({
      dependency: b.dependency,
      state: b.state as BreakerState,
      since: b.state_since,
      consecutive_failures: b.consecutive_failures,
      opened_at: b.opened_at,
      next_probe_at: b.state === "closed" ? null : b.next_probe_at,
      cooldown_seconds: b.cooldown_seconds,
      last_error: b.last_error,
      last_error_at: b.last_error_at,
      last_success_at: b.last_success_at,
    }))
    .sort((a, b) => (rank[a.state] ?? 3) - (rank[b.state] ?? 3) || a.dependency.localeCompare(b.dependency));
}
