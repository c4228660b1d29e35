// BENCH_PROBE=1 for bench:submit: what stalled the API server during open loop A — its V8 GC pauses (`--trace-gc`), its
// event-loop stalls (bench/lib/loop-stall-probe.cjs), Postgres checkpoints and autovacuum runs — lined up with A's
// per-second p99, so a slow second can be put down to the server, the database or neither (the machine).
import { join } from "node:path";
import type pg from "pg";
import { root } from "./next-app";
import { fmtMs } from "./stats";

/** Node arguments for the probed server (its output lines must be stamped: startNext's `stampLines`). */
export const PROBE_NODE_ARGS = ["--trace-gc", "--require", join(root, "bench/lib/loop-stall-probe.cjs")];

export interface ProbeEvents {
  gc: { at: number; kind: string; pauseMs: number }[];
  stalls: { at: number; ms: number }[];
}

/** GC pauses and loop stalls from stamped lines (`<epoch ms> <line>`) between two wall-clock times. */
export function probeEvents(lines: string[], fromMs: number, toMs: number): ProbeEvents {
  const out: ProbeEvents = { gc: [], stalls: [] };
  for (const l of lines) {
    const sp = l.indexOf(" ");
    const at = Number(l.slice(0, sp));
    if (!(at >= fromMs && at <= toMs)) continue;
    // e.g. "[pid:0x…]  23853 ms: Scavenge 137.2 (214.5) -> 93.4 (219.8) MB, pooled: 0 MB, 16.11 / 0.00 ms  (…"
    const gc = /ms: (Scavenge|Mark-Compact|Minor Mark-Sweep|Mark-Sweep)[^,]*,(?: pooled: [\d.]+ MB,)? ([\d.]+) \/ [\d.]+ ms/.exec(l);
    if (gc) out.gc.push({ at, kind: gc[1]!, pauseMs: Number(gc[2]) });
    const st = /\[loop-stall\] (\d+) ms, ended (\d+)/.exec(l);
    if (st) out.stalls.push({ at: Number(st[2]), ms: Number(st[1]) });
  }
  return out;
}

export interface DbActivity {
  checkpoints: number;
  autovacuums: number;
  autoanalyzes: number;
}

/** Postgres's cumulative checkpoint and autovacuum counts (PG 17+ has pg_stat_checkpointer; older: pg_stat_bgwriter). */
export async function dbActivity(client: pg.Client): Promise<DbActivity> {
  const ck = await client
    .query<{ n: string }>("select (num_timed + num_requested)::text as n from pg_stat_checkpointer")
    .catch(() => client.query<{ n: string }>("select (checkpoints_timed + checkpoints_req)::text as n from pg_stat_bgwriter"));
  const av = await client.query<{ v: string; a: string }>(
    "select coalesce(sum(autovacuum_count), 0)::text as v, coalesce(sum(autoanalyze_count), 0)::text as a from pg_stat_all_tables",
  );
  return { checkpoints: Number(ck.rows[0]?.n ?? 0), autovacuums: Number(av.rows[0]?.v ?? 0), autoanalyzes: Number(av.rows[0]?.a ?? 0) };
}

export interface ProbeReport {
  events: ProbeEvents;
  db: DbActivity;
}

/** Prints, per second of the phase: p99, the server's GC pauses and loop stalls in it; then the totals. */
export function printProbe(perSecond: { p99: number }[], startedAtMs: number, p: ProbeReport): void {
  const sec = (at: number) => Math.floor((at - startedAtMs) / 1000);
  console.log("  probe (BENCH_PROBE=1) — the API server during A, per second: p99 | GC pauses ≥ 5 ms | event-loop stalls ≥ 30 ms");
  perSecond.forEach((b, i) => {
    const gc = p.events.gc.filter((g) => sec(g.at) === i && g.pauseMs >= 5).map((g) => `${g.kind === "Scavenge" ? "S" : g.kind} ${fmtMs(g.pauseMs)}`);
    const st = p.events.stalls.filter((s) => sec(s.at) === i).map((s) => fmtMs(s.ms));
    console.log(`    ${String(i).padStart(2)}  ${fmtMs(b.p99).padStart(6)}  | ${gc.join(", ") || "-"} | ${st.join(", ") || "-"}`);
  });
  const inA = p.events.gc.filter((g) => sec(g.at) >= 0 && sec(g.at) < perSecond.length);
  const by = (k: string) => inA.filter((g) => (k === "Scavenge" ? g.kind === "Scavenge" : g.kind !== "Scavenge"));
  const stat = (xs: { pauseMs: number }[]) =>
    xs.length ? `${xs.length}, mean ${fmtMs(xs.reduce((a, x) => a + x.pauseMs, 0) / xs.length)}, max ${fmtMs(Math.max(...xs.map((x) => x.pauseMs)))} ms` : "0";
  console.log(
    `  GC in A: scavenges ${stat(by("Scavenge"))}; full (mark-compact/sweep) ${stat(by("full"))}; ` +
      `event-loop stalls ≥ 30 ms: ${p.events.stalls.length}${p.events.stalls.length ? ` (max ${fmtMs(Math.max(...p.events.stalls.map((s) => s.ms)))} ms)` : ""}; ` +
      `Postgres during A: ${p.db.checkpoints} checkpoint(s), ${p.db.autovacuums} autovacuum(s), ${p.db.autoanalyzes} autoanalyze(s)`,
  );
}
