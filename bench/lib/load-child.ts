// The load generator's process: receives jobs over IPC from bench/submit.ts, runs them one at a time, and
// answers with the figures. Exits when its parent goes away.
import { closedLoop, openLoop, type LoadResult, type RequestSpec } from "./load";

export type LoadJobSpec =
  | { kind: "open"; spec: RequestSpec; rate: number; durationMs: number; seqStart?: number }
  | { kind: "closed"; spec: RequestSpec; concurrency: number; durationMs: number; seqStart?: number };
export type LoadJob = LoadJobSpec & { id: number };

export type LoadReply = { id: number; result: LoadResult } | { id: number; error: string };

if (!process.send) {
  console.error("bench/lib/load-child.ts runs as a child of bench/submit.ts (it needs an IPC channel)");
  process.exit(2);
}

process.on("message", (job: LoadJob) => {
  const run = job.kind === "open" ? openLoop(job.spec, job) : closedLoop(job.spec, job);
  run.then(
    (result) => process.send!({ id: job.id, result } satisfies LoadReply),
    (e: unknown) => process.send!({ id: job.id, error: e instanceof Error ? e.stack ?? e.message : String(e) } satisfies LoadReply),
  );
});
process.on("disconnect", () => process.exit(0));
process.send({ ready: true });
