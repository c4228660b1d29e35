// Task-list pages against a running app (`npm run dev`): N tasks with a ~200 KB input each (allowed bodies), then
// `GET /api/tasks?limit=100` 1, 5 and 20 at once; prints each answer's size, the wall time per round and the load.
// Watch the app's memory meanwhile (ps -o rss -p <next-server pid>). docs/benchmarks.md, session 9 red.
//   APP=http://127.0.0.1:3000 KEY=<local API key> [BENCH_TASKS=100] [BENCH_SKIP_CREATE=1] npx tsx bench/list-pages.ts
import { loadavg } from "node:os";

const APP = process.env.APP ?? "http://127.0.0.1:3000";
const KEY = process.env.KEY;
if (!KEY) throw new Error("KEY (an API key of the app at APP) is required");
const N = Number(process.env.BENCH_TASKS ?? 100);
const auth = { authorization: `Bearer ${KEY}` };
const load = () => loadavg().map((l) => l.toFixed(2)).join(" ");

async function main(): Promise<void> {
  if (!process.env.BENCH_SKIP_CREATE) {
    const blob = "x".repeat(200_000);
    const t0 = Date.now();
    for (let i = 0; i < N; i += 10) {
      await Promise.all(
        Array.from({ length: Math.min(10, N - i) }, async (_, j) => {
          const r = await fetch(`${APP}/api/tasks`, {
            method: "POST",
            headers: { ...auth, "content-type": "application/json" },
            body: JSON.stringify({ agent: "content", prompt: `list-pages bench ${i + j}`, input: { blob } }),
          });
          if (r.status !== 202) console.log("POST", r.status, (await r.text()).slice(0, 200));
        }),
      );
    }
    console.log(`created ${N} tasks of ~200 KB in ${Date.now() - t0} ms (load ${load()})`);
  }
  await (await fetch(`${APP}/api/tasks?limit=100`, { headers: auth })).arrayBuffer(); // warm
  for (const par of [1, 5, 20]) {
    const t = Date.now();
    const sizes = await Promise.all(
      Array.from({ length: par }, async () => {
        const r = await fetch(`${APP}/api/tasks?limit=100`, { headers: auth });
        return (await r.arrayBuffer()).byteLength;
      }),
    );
    console.log(`${par} at once: ${Date.now() - t} ms, ${(sizes[0]! / 1e6).toFixed(1)} MB per answer (load ${load()})`);
  }
}

void main();
