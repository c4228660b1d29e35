// The crash sweep, small and seeded (issue 13; the full sweep is `npm run bench:crash-sweep`): the app's Inngest
// functions run in a child process that is SIGKILLed while model calls are in flight, then started again on the same
// port; the engine retries, each retried turn writes its lost call off as an estimate and calls again. Then the ledger
// is compared with what the provider billed (the double's record of every 200 it answered, priced):
//   - every answer the provider billed that the app never read is in the ledger as an `estimated` row, and every
//     estimate is at least the input cost of its call;
//   - no settled call is counted twice: the real (non-estimated) settlements of a task are answers the provider gave;
//   - ledger − billed is bounded by the estimates charged.
//
// No timing assumption: the kills are placed by a proxy between the app and the double, at fixed model requests
// (the 2nd, 5th and 8th), right after the request has been handed to the double — so each kill lands on a call whose
// reservation is open and whose answer the app can never read, however slow the machine is. Kills are fewer than the
// run's attempts (retries: 4), so every task still completes.
import { spawn, type ChildProcess } from "node:child_process";
import { createServer, request, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, expect, test } from "vitest";
import { startClaudeDouble, scenarioMarker, type ClaudeDouble } from "../../../local/claude/server";
import { startEngine, type Engine } from "../../../local/engine";
import { freePort } from "../../../local/ports";
import { costMicros, priceFor } from "../../../lib/llm/prices";
import { submitTask } from "../../../lib/tasks/submit";
import { createTestDatabase, type TestDatabase } from "../../support/postgres";
import { until } from "../../support/engine-harness";
import { createTestSupabase, type TestSupabase } from "../../support/supabase";
import { sql } from "../db/sql";
import { expectCountersMatchLedger } from "./helpers";

const TASKS = 4;
const KILL_AT = new Set([2, 5, 8]); // ordinals of the model requests (POST /v1/messages) that trigger a kill
const SEED = 11;
const CHILD = fileURLToPath(new URL("./crash-app-child.ts", import.meta.url));

let sb: TestSupabase;
let double: ClaudeDouble;
let engineDb: TestDatabase;
let engine: Engine;
let proxy: Server;
let app: ChildProcess | null = null;
let appPort: number;
const appOutput: string[] = [];
const savedEnv = new Map<string, string | undefined>();

/** Starts the app process; resolves once it listens. */
async function startApp(env: NodeJS.ProcessEnv): Promise<void> {
  const child = spawn(process.execPath, ["--conditions=react-server", "--import", "tsx", CHILD], { env, stdio: ["ignore", "pipe", "pipe"] });
  app = child;
  child.stderr!.on("data", (d: Buffer) => appOutput.push(d.toString()));
  await new Promise<void>((resolve, reject) => {
    let buf = "";
    child.stdout!.on("data", (d: Buffer) => {
      buf += d.toString();
      if (buf.includes("READY")) resolve();
    });
    child.once("exit", (code) => reject(new Error(`the app exited (${code}) before it was ready: ${appOutput.join("").slice(-2000)}`)));
  });
}

let messageRequests = 0;
let kills = 0;
let restarting: Promise<void> = Promise.resolve();

/**
 * A pass-through proxy in front of the double. A request is forwarded only once its body has arrived whole (one the
 * dying app did not finish sending never reaches the provider); the double answers every forwarded request, as the
 * real API finishes and bills a call whose client went away.
 */
function startProxy(target: string, onModelRequest: () => void): Promise<Server> {
  const upstream = new URL(target);
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("error", () => {});
    res.on("error", () => {});
    req.on("end", () => {
      const headers: IncomingHttpHeaders = { ...req.headers, host: upstream.host };
      const up = request({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers }, (answer) => {
        if (res.destroyed) return answer.resume();
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      });
      up.on("error", () => res.destroy());
      up.end(Buffer.concat(chunks));
      if (req.method === "POST" && req.url?.split("?")[0] === "/v1/messages") onModelRequest();
    });
  });
  return new Promise((r) => server.listen(0, "127.0.0.1", () => r(server)));
}

beforeAll(async () => {
  sb = await createTestSupabase();
  double = await startClaudeDouble({ maxCallBodies: 0 });
  engineDb = await createTestDatabase({ empty: true });
  // The real clock: the runs only wait for the model and for the app to come back (no durable sleeps to cross).
  engine = await startEngine({ databaseUrl: engineDb.url, port: 0, retryBackoff: () => 300 });
  appPort = await freePort();
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    SUPABASE_URL: sb.supabaseUrl,
    SUPABASE_SECRET_KEY: sb.secretKey,
    INNGEST_DEV: engine.url,
    NIGHTSHIFT_DIGEST_TIME: "off",
    CRASH_APP_PORT: String(appPort),
  };
  proxy = await startProxy(double.url, () => {
    messageRequests += 1;
    if (!KILL_AT.has(messageRequests)) return;
    // Kill now, synchronously: the request is on its way to the double, the app will never read the answer.
    const victim = app;
    victim?.kill("SIGKILL");
    kills += 1;
    restarting = restarting.then(async () => {
      if (victim && victim.exitCode === null && victim.signalCode === null) await new Promise((r) => victim.once("exit", r));
      await startApp(env);
    });
  });
  env.ANTHROPIC_BASE_URL = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  await startApp(env);
  await engine.sync(`http://127.0.0.1:${appPort}/api/inngest`);
  // This process only submits tasks and relays their start events (the outbox) to the engine.
  for (const [k, v] of Object.entries({ SUPABASE_URL: sb.supabaseUrl, SUPABASE_SECRET_KEY: sb.secretKey, INNGEST_DEV: engine.url })) {
    savedEnv.set(k, process.env[k]);
    process.env[k] = v;
  }
  await sql(sb.databaseUrl, `update public.agents set concurrency = 4, budget_timezone = 'UTC' where id = 'research'`);
}, 180_000);

afterAll(async () => {
  await restarting.catch(() => {});
  app?.kill("SIGKILL");
  await engine?.stop();
  await new Promise<void>((r) => (proxy ? (proxy.closeAllConnections(), proxy.close(() => r())) : r()));
  await double?.stop();
  await engineDb?.drop().catch(() => {});
  await sb?.stop();
  for (const [k, v] of savedEnv) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

test("killed mid-call: every lost call is in the ledger as an estimate ≥ its input cost, nothing counted twice, ledger − billed ≤ the estimates", async () => {
  // Seeded workload: research tasks of 2–3 turns (a max_tokens cut continued by the next turn), 100–900 output tokens
  // a turn. Each task's script has spare steps: a retried call asks the double again.
  let seed = SEED;
  const rnd = () => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
  const scenarios = new Map<string, string>(); // task id -> scenario
  for (let i = 0; i < TASKS; i++) {
    const scenario = `crash-sweep-${i}`;
    const turns = 2 + Math.floor(rnd() * 2);
    double.script(
      scenario,
      Array.from({ length: turns + KILL_AT.size + 1 }, (_, t) => ({
        text: `Part ${t} of the answer to question ${i}.`,
        ...(t < turns - 1 ? { stop_reason: "max_tokens" as const } : {}),
        latency_ms: 200 + Math.round(rnd() * 300),
        usage: { output_tokens: 100 + Math.round(rnd() * 800) },
      })),
    );
    const t = await submitTask(sb.admin, { agent: "research", prompt: `${scenarioMarker(scenario)} Question ${i}.` }, null, null, { relay: "none" });
    scenarios.set(t.taskId, scenario);
  }
  const { relayOutbox } = await import("../../../inngest/outbox-relay");
  await relayOutbox({ db: sb.admin }); // (the app's sweeper cron would send them too, within a minute)

  const ids = [...scenarios.keys()];
  await until(
    async () => {
      const rows = await sql<{ status: string }>(sb.databaseUrl, `select status::text from public.tasks where id = any($1::uuid[])`, [ids]);
      return rows.every((r) => ["completed", "failed", "stopped", "cancelled", "rejected"].includes(r.status));
    },
    { timeoutMs: 150_000, intervalMs: 250, message: "every task to end" },
  );
  await restarting;
  expect(kills).toBe(KILL_AT.size);

  const rows = await sql<{ id: string; status: string; cost: string; est: string }>(
    sb.databaseUrl,
    `select id, status::text, cost_micros::text cost, estimated_cost_micros::text est from public.tasks where id = any($1::uuid[])`,
    [ids],
  );
  const ledgerRows = await sql<{ task_id: string; actual: string; estimated: boolean; input_tokens: number; model: string }>(
    sb.databaseUrl,
    `select task_id, actual_micros::text actual, estimated, input_tokens, model from public.budget_reservations
      where task_id = any($1::uuid[]) and status = 'settled'`,
    [ids],
  );
  let billedTotal = 0, ledgerTotal = 0, estimatedTotal = 0, lostTotal = 0;
  for (const task of rows) {
    expect(task.status, `task ${task.id}`).toBe("completed");
    const scenario = scenarios.get(task.id)!;
    // What the provider billed: every 200 it answered for the task, priced.
    const bills = double.calls({ scenario, kind: "messages" }).filter((c) => c.status === 200 && c.usage).map((c) => costMicros(c.model!, c.usage!));
    const billed = bills.reduce((s, x) => s + x, 0);
    const mine = ledgerRows.filter((r) => r.task_id === task.id);
    const real = mine.filter((r) => !r.estimated).map((r) => Number(r.actual));
    const lost = mine.filter((r) => r.estimated);

    // No settled call counted twice: each real settlement is one of the provider's answers, used once.
    const unmatched = [...bills];
    for (const amount of real) {
      const at = unmatched.indexOf(amount);
      expect(at, `task ${task.id}: a settlement of ${amount} µ$ matches no answer the provider billed`).toBeGreaterThanOrEqual(0);
      unmatched.splice(at, 1);
    }
    // Every billed answer the app never read is in the ledger as an estimate (a lost call the provider never saw
    // — a request cut off by the kill — is an estimate too, hence ≥).
    expect(lost.length, `task ${task.id}: estimates for ${unmatched.length} unread answers`).toBeGreaterThanOrEqual(unmatched.length);
    for (const r of lost) {
      expect(r.input_tokens).toBeGreaterThan(0);
      expect(Number(r.actual)).toBeGreaterThanOrEqual(Math.ceil((r.input_tokens * priceFor(r.model).input) / 1_000_000));
    }
    // The task's cost is the ledger's; ledger − billed never exceeds what was estimated.
    const ledger = Number(task.cost);
    expect(ledger).toBe(mine.reduce((s, r) => s + Number(r.actual), 0));
    expect(Number(task.est)).toBe(lost.reduce((s, r) => s + Number(r.actual), 0));
    expect(ledger - billed).toBeLessThanOrEqual(Number(task.est));
    billedTotal += billed;
    ledgerTotal += ledger;
    estimatedTotal += Number(task.est);
    lostTotal += lost.length;
  }
  console.log(`crash sweep: ${kills} kills, ${lostTotal} lost calls estimated; billed ${billedTotal} µ$, ledger ${ledgerTotal} µ$ (estimated ${estimatedTotal} µ$)`);
  // Each kill landed on a call whose reservation was open and whose answer was billed and never read.
  expect(lostTotal).toBeGreaterThanOrEqual(KILL_AT.size);
  expect(ledgerTotal - billedTotal).toBeLessThanOrEqual(estimatedTotal);
  await expectCountersMatchLedger(sb.databaseUrl, "research");
}, 200_000);
