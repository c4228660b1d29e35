// What runs the tasks in bench:submit, in its own process so that it can be given a lower CPU priority than the API
// path: the local Inngest engine (on Vercel: Inngest Cloud) and the offline Claude double (Anthropic). Started by
// bench/submit.ts with an IPC channel; answers { engineUrl, doubleUrl } once both listen, stops when the parent goes.
import { startClaudeDouble } from "../../local/claude/server";
import { startEngine } from "../../local/engine";

export interface RunsChildReady {
  ready: true;
  engineUrl: string;
  doubleUrl: string;
}

if (!process.send) {
  console.error("bench/lib/runs-child.ts runs as a child of bench/submit.ts (it needs an IPC channel)");
  process.exit(2);
}

const databaseUrl = process.env["BENCH_DATABASE_URL"];
if (!databaseUrl) {
  console.error("bench/lib/runs-child.ts: BENCH_DATABASE_URL is not set");
  process.exit(2);
}

const double = await startClaudeDouble();
const engine = await startEngine({ databaseUrl, port: 0 });
let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  void Promise.allSettled([engine.stop(), double.stop()]).finally(() => process.exit(0));
};
process.on("disconnect", stop);
process.once("SIGTERM", stop);
process.once("SIGINT", stop);
process.send({ ready: true, engineUrl: engine.url, doubleUrl: double.url } satisfies RunsChildReady);
