// npm run bench:submit-roundtrips — how many database round trips a POST /api/tasks makes before it answers, and how
// many the outbox relay makes after (batched across requests). The app's real route handler, the real supabase-js,
// PostgREST and Postgres (the embedded data stack); a counting proxy in front of PostgREST sees every request, and
// an event API stub stands in for Inngest. Counts are structural, so this needs no quiet machine.
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startDataStack, type DataStack } from "../local/data-stack";
import { adminClient } from "./lib/next-app";

const N = Number(process.env["BENCH_POSTS"] ?? 200);
/** POSTs of the steady phase (one every 10 ms). */
const STEADY = Number(process.env["BENCH_STEADY_POSTS"] ?? 300);
/** The closed loop's length (16 clients). */
const CLOSED_MS = Number(process.env["BENCH_CLOSED_MS"] ?? 3000);

function body(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

async function main() {
  const dataDir = await mkdtemp(join(tmpdir(), "nightshift-bench-rt-"));
  let stack: DataStack | undefined;
  const servers: Server[] = [];
  try {
    stack = await startDataStack({ dataDir, persistent: false });
    const target = stack.supabaseUrl;
    const seen: string[] = [];
    const proxy = createServer(async (req, res) => {
      const buf = await body(req);
      seen.push(`${req.method} ${(req.url ?? "").split("?")[0]}`);
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) if (typeof v === "string" && k !== "host" && k !== "content-length") headers[k] = v;
      const r = await fetch(`${target}${req.url}`, { method: req.method, headers, body: buf.length ? new Uint8Array(buf) : undefined });
      const out = Buffer.from(await r.arrayBuffer());
      const h: Record<string, string> = {};
      r.headers.forEach((v, k) => {
        if (k !== "content-length" && k !== "content-encoding" && k !== "transfer-encoding") h[k] = v;
      });
      res.writeHead(r.status, h).end(out);
    });
    let events = 0;
    let sends = 0;
    const eventApi = createServer(async (req, res) => {
      const list = JSON.parse((await body(req)).toString("utf8")) as unknown[];
      events += list.length;
      sends++;
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ ids: list.map((_, i) => `e${i}`), status: 200 }));
    });
    for (const s of [proxy, eventApi]) {
      servers.push(s);
      await new Promise<void>((r) => s.listen(0, "127.0.0.1", () => r()));
    }
    Object.assign(process.env, {
      SUPABASE_URL: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`,
      SUPABASE_SECRET_KEY: stack.secretKey,
      INNGEST_DEV: `http://127.0.0.1:${(eventApi.address() as AddressInfo).port}`,
      ANTHROPIC_BASE_URL: "http://127.0.0.1:9",
      NEXT_TELEMETRY_DISABLED: "1",
    });
    const { createApiKey } = await import("../lib/api-keys");
    const key = (await createApiKey(adminClient(stack.supabaseUrl, stack.secretKey), "roundtrips")).key;
    const route = await import("../app/api/tasks/route");
    const post = (i: number) =>
      route.POST(
        new Request("http://localhost/api/tasks", {
          method: "POST",
          headers: { authorization: `Bearer ${key}`, "content-type": "application/json", "idempotency-key": `rt-${i}` },
          body: JSON.stringify({ agent: "research", prompt: `round trips ${i}` }),
        }),
      );

    // Before the answer: the requests each POST made until its handler returned (one at a time, so nothing else runs).
    const before: number[] = [];
    for (let i = 0; i < N; i++) {
      const start = seen.length;
      const res = await post(i);
      if (res.status !== 202) throw new Error(`POST answered ${res.status}: ${await res.text()}`);
      before.push(seen.length - start);
      // Let this POST's relay finish before the next, so its requests are not counted against the next one. The
      // route's relay may be a coalesced pass a few ms later (relayCoalesced): joining it waits for that one too.
      const { relayCoalesced } = await import("../inngest/outbox-relay");
      await relayCoalesced();
    }
    const hot = new Map<string, number>();
    const all = seen.length;
    // A burst: N requests at once, then the relay's requests for all of them.
    const burstStart = seen.length;
    const eventsBefore = events;
    await Promise.all(Array.from({ length: N }, (_, i) => post(N + i)));
    const { relayPending, relayCoalesced } = await import("../inngest/outbox-relay");
    for (let k = 0; k < 20 && events - eventsBefore < N; k++) await relayPending();
    for (const s of seen.slice(burstStart)) hot.set(s, (hot.get(s) ?? 0) + 1);
    const burstRequests = seen.length - burstStart;
    const burstEvents = events - eventsBefore;

    // A steady stream: one POST every 10 ms (100/s) for STEADY POSTs, each relayed after its answer as the route does.
    const steadyStart = seen.length;
    const steadyEvents = events;
    const sendsBefore = sends;
    const t0 = performance.now();
    const steady: Promise<Response>[] = [];
    for (let i = 0; i < STEADY; i++) {
      const due = t0 + i * 10 - performance.now();
      if (due > 0) await new Promise((r) => setTimeout(r, due));
      steady.push(post(2 * N + i));
    }
    await Promise.all(steady);
    const steadyMs = performance.now() - t0;
    for (let k = 0; k < 20 && events - steadyEvents < STEADY; k++) await relayCoalesced();
    const steadySeen = seen.slice(steadyStart);
    const steadySent = { events: events - steadyEvents, sends: sends - sendsBefore };

    // A closed loop as bench:submit's C line runs it: 16 clients, each posting again as soon as it is answered.
    const closedStart = seen.length;
    const closedEvents = events;
    const closedSends = sends;
    const t1 = performance.now();
    let closedPosts = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (performance.now() - t1 < CLOSED_MS) {
          const res = await post(3 * N + STEADY + closedPosts++);
          if (res.status !== 202) throw new Error(`POST answered ${res.status}`);
        }
      }),
    );
    const closedMs = performance.now() - t1;
    for (let k = 0; k < 20 && events - closedEvents < closedPosts; k++) await relayCoalesced();
    const closedSeen = seen.slice(closedStart);

    console.log(`bench:submit-roundtrips — ${new Date().toISOString()}`);
    console.log(`sequential: ${N} POSTs, database requests before each answer: min ${Math.min(...before)}, max ${Math.max(...before)} (${[...new Set(seen.slice(0, all).filter((s) => s.includes("submit_task")))].join(", ")})`);
    console.log(`sequential incl. relay: ${(all / N).toFixed(2)} database requests per POST (relay after the answer: claim + mark sent + one empty claim)`);
    console.log(`burst of ${N} at once: ${burstRequests} database requests in all, ${(burstRequests / N).toFixed(2)} per POST; ${burstEvents} events sent`);
    for (const [k, v] of [...hot.entries()].sort((a, b) => b[1] - a[1])) console.log(`  ${String(v).padStart(5)}  ${k}`);
    const count = (what: string) => steadySeen.filter((x) => x.includes(what)).length;
    console.log(
      `steady ${STEADY} POSTs at 100/s (all answered in ${(steadyMs / 1000).toFixed(1)} s): ${(steadySeen.length / STEADY).toFixed(2)} database requests per POST ` +
        `(${count("submit_task")} submit_task, ${count("outbox_claim")} claims, ${count("outbox_mark_sent")} marks); ` +
        `${steadySent.events} events in ${steadySent.sends} sends (${(steadySent.events / Math.max(1, steadySent.sends)).toFixed(1)} per send)`,
    );
    const closedCount = (what: string) => closedSeen.filter((x) => x.includes(what)).length;
    console.log(
      `closed loop, 16 clients for ${(closedMs / 1000).toFixed(1)} s: ${closedPosts} POSTs (${((closedPosts * 1000) / closedMs).toFixed(0)}/s), ` +
        `${(closedSeen.length / closedPosts).toFixed(2)} database requests per POST (${closedCount("outbox_claim")} claims, ` +
        `${closedCount("outbox_mark_sent")} marks: ${((closedCount("outbox_claim") + closedCount("outbox_mark_sent")) / closedPosts).toFixed(2)} per POST); ` +
        `${events - closedEvents} events in ${sends - closedSends} sends (${((events - closedEvents) / Math.max(1, sends - closedSends)).toFixed(1)} per send)`,
    );
  } finally {
    for (const s of servers) s.close();
    await stack?.stop().catch(() => {});
    await rm(dataDir, { recursive: true, force: true }).catch(() => {});
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
