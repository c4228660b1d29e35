// Claude answering 200 with a body that is not a message — JSON of the wrong shape, usage figures that are not counts,
// an HTML page — through the app's real functions on the local engine (manual clock) and the real database. A relay in
// front of the offline double corrupts the answers of the scenarios named below and passes everything else through.
// Each such task must end as a corrupted answer (failure kind answer_corrupted, in words), never as "our bug", with no
// reservation left hanging and no nonsense amount settled; a task whose first answer is corrupted completes on retry.
import http from "node:http";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { scenarioMarker } from "../../../local/claude/server";
import { ManualClock } from "../../../local/engine";
import { startAppFixture, type AppFixture } from "../../support/app-fixture";
import { quietTick, until } from "../../support/engine-harness";

const BODIES: Record<string, { type: string; body: string }> = {
  empty: { type: "application/json", body: "{}" },
  "no-usage": { type: "application/json", body: JSON.stringify({ id: "msg_x", type: "message", role: "assistant", model: "m", content: [{ type: "text", text: "hi" }], stop_reason: "end_turn" }) },
  "negative-usage": {
    type: "application/json",
    body: JSON.stringify({ id: "msg_x", type: "message", role: "assistant", model: "m", content: [{ type: "text", text: "hi" }], stop_reason: "end_turn", usage: { input_tokens: -5_000_000, output_tokens: 10 } }),
  },
  html: { type: "text/html; charset=utf-8", body: "<html><body>502 Bad Gateway</body></html>" },
};

/** Forwards to the double; a /v1/messages call of scenario `corrupt-<kind>` (or `once-<kind>`, first call only) gets BODIES[kind]. */
async function corruptingRelay() {
  let target = "";
  const onceDone = new Set<string>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const raw = Buffer.concat(chunks);
      const m = /\[\[scenario:(corrupt|once)-([a-z-]+)\]\]/.exec(raw.toString("utf8"));
      const path = (req.url ?? "").split("?")[0];
      if (m && path === "/v1/messages" && BODIES[m[2]!] && !(m[1] === "once" && onceDone.has(m[0]))) {
        onceDone.add(m[0]);
        const b = BODIES[m[2]!]!;
        res.writeHead(200, { "content-type": b.type, "request-id": "req_corrupt" });
        return void res.end(b.body);
      }
      const up = http.request(`${target}${req.url}`, { method: req.method, headers: { ...req.headers, host: new URL(target).host } }, (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      });
      up.on("error", () => res.destroy());
      up.end(raw);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    setTarget: (t: string) => (target = t),
    close: () => new Promise((r) => server.close(r)),
  };
}

let fx: AppFixture;
let relay: Awaited<ReturnType<typeof corruptingRelay>>;
let submitTask: typeof import("@/lib/tasks/submit").submitTask;

beforeAll(async () => {
  relay = await corruptingRelay();
  fx = await startAppFixture({ clock: new ManualClock(Date.now()), double: { onEngineClock: true }, env: { ANTHROPIC_BASE_URL: relay.url } });
  relay.setTarget(fx.double.url);
  ({ submitTask } = await import("@/lib/tasks/submit"));
  await fx.sb.admin.from("agents").update({ concurrency: 8, daily_budget_micros: 50_000_000 }).eq("id", "research");
}, 120_000);

afterAll(async () => {
  await fx?.stop();
  await relay?.close();
});

const ENDED = ["completed", "failed", "stopped", "rejected", "cancelled"];

async function ended(ids: string[]) {
  return until(
    async () => {
      const { data } = await fx.sb.admin.from("tasks").select("id,status,status_reason,cost_micros").in("id", ids);
      return data && data.length === ids.length && data.every((t) => ENDED.includes(t.status)) ? data : undefined;
    },
    { timeoutMs: 150_000, tick: quietTick(fx.te.engine, fx.clock, 60_000), message: "the tasks did not all end" },
  );
}

describe("Claude answers 200 with something that is not a message", () => {
  test("every such task fails as a corrupted answer: in words, no reservation left open, nothing negative settled", async () => {
    const kinds = Object.keys(BODIES);
    const ids: string[] = [];
    for (const k of kinds) ids.push((await submitTask(fx.sb.admin, { agent: "research", prompt: `${scenarioMarker(`corrupt-${k}`)} Summarize.` }, null, null)).taskId);
    const done = await ended(ids);
    for (const t of done) expect(t.status, JSON.stringify(t)).toBe("failed");

    const { data: letters } = await fx.sb.admin.from("dead_letters").select("task_id,failure_kind,summary,error").in("task_id", ids);
    expect(letters).toHaveLength(kinds.length);
    for (const dl of letters!) {
      expect(dl.failure_kind, JSON.stringify(dl)).toBe("answer_corrupted");
      expect(`${dl.summary} ${JSON.stringify(dl.error)}`).not.toMatch(/Cannot read|undefined|TypeError/);
    }
    const { data: ledger } = await fx.sb.admin.from("budget_reservations").select("task_id,status,actual_micros").in("task_id", ids);
    expect(ledger!.filter((r) => r.status === "reserved")).toEqual([]);
    for (const r of ledger!) expect(Number(r.actual_micros ?? 0)).toBeGreaterThanOrEqual(0);
    for (const t of done) expect(Number(t.cost_micros)).toBeGreaterThanOrEqual(0);
  }, 200_000);

  test("a corrupted first answer is retried and the task completes", async () => {
    const { taskId } = await submitTask(fx.sb.admin, { agent: "research", prompt: `${scenarioMarker("once-no-usage")} Summarize.` }, null, null);
    const [t] = await ended([taskId]);
    expect(t!.status, JSON.stringify(t)).toBe("completed");
    const { data: ledger } = await fx.sb.admin.from("budget_reservations").select("status").eq("task_id", taskId);
    expect(ledger!.filter((r) => r.status === "reserved")).toEqual([]);
  }, 200_000);
});
