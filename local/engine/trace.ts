// A hop trace of the checkpoint path, for `BENCH_TRACE=1 npm run bench:engine` (docs/benchmarks.md): when
// INNGEST_ENGINE_TRACE names a file, the engine notes the time of each hop of every checkpoint (request in, body
// parsed, run lock taken, commit sent, committed, answered) and writes them there when it stops. Times are
// CLOCK_MONOTONIC in µs (process.hrtime), which every process on the machine shares, so the bench lines them up
// with the SDK's own hops without any clock skew. Off (one branch per hop) unless the variable is set.
import { writeFileSync } from "node:fs";

const file = process.env["INNGEST_ENGINE_TRACE"] || undefined;

/** [key, hop, µs]; key = `${runId}:${step hash}` of the checkpoint's first step. */
const marks: [string, string, number][] = [];

export const tracing = file !== undefined;

export function nowUs(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

export function traceMark(key: string, hop: string, at = nowUs()): void {
  if (marks.length < 1_000_000) marks.push([key, hop, at]);
}

/** Writes the marks (JSON lines) to the trace file; called when the engine stops. */
export function flushTrace(): void {
  if (!file) return;
  writeFileSync(file, marks.map((m) => JSON.stringify(m)).join("\n") + "\n");
}
