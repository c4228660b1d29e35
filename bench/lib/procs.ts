// Where the CPU goes during a benchmark phase, from /proc (Linux): CPU time per component of the system under
// test, read before and after the phase, and the machine's overall busy share.
import { readdirSync, readFileSync } from "node:fs";
import { setPriority } from "node:os";

/** Kernel clock ticks per second (USER_HZ); 100 on every mainstream Linux. */
const TICKS_PER_S = 100;

interface Proc {
  pid: number;
  ppid: number;
  pgrp: number;
  comm: string;
  /** Start time since boot (clock ticks): with the pid, what identifies a process. The comm does not: a kernel
   * worker renames itself after the workqueue it serves ("kworker/1:2-events" → "kworker/1:2-mm_percpu_wq"). */
  start: number;
  /** utime + stime, in ms. */
  cpuMs: number;
  /** cutime + cstime, in ms: the CPU of its children that ended and were reaped (a Postgres backend that closed). */
  reapedMs: number;
}

function readProcs(): Map<number, Proc> {
  const out = new Map<number, Proc>();
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, "utf8");
      const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      // After the comm: state(0) ppid(1) pgrp(2) ... utime(11) stime(12) ... starttime(19)
      out.set(Number(d), {
        pid: Number(d),
        ppid: Number(f[1]),
        pgrp: Number(f[2]),
        comm,
        start: Number(f[19]),
        cpuMs: ((Number(f[11]) + Number(f[12])) * 1000) / TICKS_PER_S,
        reapedMs: ((Number(f[13]) + Number(f[14])) * 1000) / TICKS_PER_S,
      });
    } catch {
      // gone while listing
    }
  }
  return out;
}

function descendsFrom(procs: Map<number, Proc>, pid: number, root: number): boolean {
  for (let p = procs.get(pid), hops = 0; p && hops < 64; p = procs.get(p.ppid), hops++) {
    if (p.ppid === root || p.pid === root) return true;
  }
  return false;
}

export interface Components {
  /** This process: the Supabase `/rest/v1` proxy (and whatever else the bench runs in it). */
  benchPid: number;
  /** The process group of the child that runs the local engine and the Claude double (bench/lib/runs-child.ts). */
  runsPgid?: number;
  /** The process group of `next start`. */
  nextPgid?: number;
  /** The process group of the second `next start` that serves `/api/inngest` (the engine's calls), if any. */
  runnerPgid?: number;
  loadPid?: number;
}

export const COMPONENT_NAMES = [
  "next-server",
  "runs next-server",
  "engine+double",
  "postgrest",
  "postgres",
  "bench: REST proxy",
  "load generator",
  "other processes",
] as const;
export type ComponentName = (typeof COMPONENT_NAMES)[number];

export interface CpuSnapshot {
  at: number;
  byComponent: Record<ComponentName, number>;
  /** Per pid, so that a process that exits between snapshots is not counted negative. */
  perPid: Map<number, { component: ComponentName; cpuMs: number; comm: string; start: number }>;
  machine: MachineTicks;
}

interface MachineTicks {
  busyTicks: number;
  totalTicks: number;
  /** irq + softirq: kernel work no process is billed for (loopback TCP lands here in part). */
  irqTicks: number;
  stealTicks: number;
}

function machineTicks(): MachineTicks {
  const line = readFileSync("/proc/stat", "utf8").split("\n")[0]!;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal guest guest_nice; guest time is already in user.
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  return { busyTicks: total - idle, totalTicks: total, irqTicks: (v[5] ?? 0) + (v[6] ?? 0), stealTicks: v[7] ?? 0 };
}

export function snapshot(c: Components): CpuSnapshot {
  const procs = readProcs();
  const perPid = new Map<number, { component: ComponentName; cpuMs: number; comm: string; start: number }>();
  for (const p of procs.values()) {
    let component: ComponentName | undefined;
    if (p.pid === c.benchPid) component = "bench: REST proxy";
    else if (c.runsPgid && p.pgrp === c.runsPgid) component = "engine+double";
    else if (c.loadPid && p.pid === c.loadPid) component = "load generator";
    else if (c.nextPgid && p.pgrp === c.nextPgid) component = "next-server";
    else if (c.runnerPgid && p.pgrp === c.runnerPgid) component = "runs next-server";
    else if (descendsFrom(procs, p.pid, c.benchPid)) {
      if (p.comm === "postgrest") component = "postgrest";
      else if (p.comm.startsWith("postgres")) component = "postgres";
    }
    perPid.set(p.pid, { component: component ?? "other processes", cpuMs: p.cpuMs, comm: p.comm, start: p.start });
  }
  const byComponent = Object.fromEntries(COMPONENT_NAMES.map((n) => [n, 0])) as Record<ComponentName, number>;
  for (const v of perPid.values()) byComponent[v.component] += v.cpuMs;
  return { at: performance.now(), byComponent, perPid, machine: machineTicks() };
}

export interface CpuUse {
  wallMs: number;
  /** CPU ms used by each component between the snapshots. */
  cpuMs: Record<ComponentName, number>;
  /** Share of the whole machine that was busy (0–1), all processes included. */
  machineBusy: number;
  /** Share of the machine in irq/softirq (0–1), and stolen by the hypervisor (0–1). */
  machineIrq: number;
  machineSteal: number;
  /** The busiest processes outside the system under test, "comm cpuMs". */
  topOthers: string[];
}

export function cpuBetween(a: CpuSnapshot, b: CpuSnapshot): CpuUse {
  const cpuMs = Object.fromEntries(COMPONENT_NAMES.map((n) => [n, 0])) as Record<ComponentName, number>;
  const others = new Map<string, number>();
  for (const [pid, v] of b.perPid) {
    const before = a.perPid.get(pid);
    // A pid seen only in `b` started during the phase; a reused pid (other start time) too. Not the comm: a kernel
    // worker that changed workqueue was counted with its whole lifetime's CPU (~4 s "in" every phase).
    const d = v.cpuMs - (before && before.start === v.start ? before.cpuMs : 0);
    cpuMs[v.component] += d;
    if (v.component === "other processes" && d > 0) others.set(v.comm, (others.get(v.comm) ?? 0) + d);
  }
  const total = b.machine.totalTicks - a.machine.totalTicks;
  const share = (k: keyof MachineTicks) => (total > 0 ? (b.machine[k] - a.machine[k]) / total : NaN);
  return {
    wallMs: b.at - a.at,
    cpuMs,
    machineBusy: share("busyTicks"),
    machineIrq: share("irqTicks"),
    machineSteal: share("stealTicks"),
    topOthers: [...others].sort((x, y) => y[1] - x[1]).slice(0, 3).map(([c, ms]) => `${c} ${ms.toFixed(0)}ms`),
  };
}

/** CPU time (ms) of one process, or of every process whose command is `comm`, from /proc (100 ticks/s). */
export function cpuMs(filter: { pid?: number; comm?: string; under?: number }): number {
  let ticks = 0;
  if (filter.under !== undefined) {
    // Only the descendants of one process (e.g. the Postgres this bench started): on a shared machine, counting
    // every process of that name counts other people's servers too. A backend that closes between two readings takes
    // its CPU out of the live processes' sum; the parent that reaped it (the postmaster) has it in its children's
    // time, so that is added (without it a run whose pool closed idle connections printed negative Postgres CPU).
    const procs = readProcs();
    for (const p of procs.values()) {
      if (filter.comm && p.comm !== filter.comm) continue;
      if (p.pid !== filter.under && descendsFrom(procs, p.pid, filter.under)) ticks += (p.cpuMs + p.reapedMs) / 10;
    }
    return ticks * 10;
  }
  const pids = filter.pid ? [String(filter.pid)] : readdirSync("/proc").filter((d) => /^\d+$/.test(d));
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      if (filter.comm && comm !== filter.comm) continue;
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // process went away
    }
  }
  return ticks * 10;
}

/**
 * Sets the nice value of every thread of every process in these process groups. On Linux niceness is per thread
 * (setpriority on a process id reaches only its main thread); threads started later inherit their creator's.
 * Returns how many threads were set; throws when one could not be (e.g. lowering niceness without CAP_SYS_NICE).
 */
export function renice(pgids: number[], nice: number): number {
  let n = 0;
  for (const p of readProcs().values()) {
    if (!pgids.includes(p.pgrp)) continue;
    let tids: string[];
    try {
      tids = readdirSync(`/proc/${p.pid}/task`);
    } catch {
      continue; // gone
    }
    for (const tid of tids) {
      try {
        setPriority(Number(tid), nice);
        n++;
      } catch (e) {
        // A thread that ended meanwhile is fine; one left at the wrong priority would make the figures lie.
        const code = (e as { info?: { code?: string } }).info?.code ?? (e as NodeJS.ErrnoException).code;
        if (code !== "ESRCH") {
          throw new Error(`could not set nice ${nice} on thread ${tid} of ${p.comm} (lowering it needs CAP_SYS_NICE): ${(e as Error).message}`);
        }
      }
    }
  }
  return n;
}
