// The checkpoint body's hand-written check (local/engine/protocol.ts isCheckpointBody, the hot path) must accept
// exactly the bodies the zod schema accepts: every field of the body and of a step set to every kind of JSON value,
// then random combinations, each compared with checkpointBodySchema.safeParse on the same JSON.parse'd value.
import { describe, expect, it } from "vitest";
import { checkpointBodySchema, isCheckpointBody, parseCheckpointBody } from "../../local/engine/protocol";

/** JSON texts of every kind of value a field may get (1e999 parses to Infinity, which z.number() refuses). */
const VALUES = ['"x"', '""', "0", "-1.5", "1e999", "-1e999", "true", "false", "null", "[]", "[1]", "{}", '{"id":"u"}', '{"id":1}', '{"a":null}'];
const ABSENT = undefined;

const TOP = ["run_id", "fn_id", "qi_id", "request_id", "generation_id", "request_started_at", "steps", "ts", "extra"];
const OP = ["id", "op", "name", "displayName", "opts", "data", "error", "userland", "extra"];

type Fields = Record<string, string | undefined>;

const baseTop = (): Fields => ({
  run_id: '"01JRUN"',
  fn_id: '"app-fn"',
  qi_id: '"01JQI"',
  request_id: '"req"',
  generation_id: "0",
  request_started_at: "1732950000000",
  ts: "1732950000001",
});
const baseOp = (): Fields => ({
  id: '"d7a6f0c2"',
  op: '"StepRun"',
  name: '"step-1"',
  displayName: '"step 1"',
  opts: '{"type":"step"}',
  data: '{"i":1,"payload":"xx"}',
  userland: '{"id":"step-1"}',
});

const obj = (f: Fields) => `{${Object.entries(f).flatMap(([k, v]) => (v === undefined ? [] : [`${JSON.stringify(k)}:${v}`])).join(",")}}`;

function body(top: Fields, ops: Fields[] | string): string {
  return obj({ ...top, steps: typeof ops === "string" ? ops : `[${ops.map(obj).join(",")}]` });
}

function agree(text: string): boolean {
  const raw = JSON.parse(text) as unknown;
  const zod = checkpointBodySchema.safeParse(raw);
  expect(isCheckpointBody(raw), text).toBe(zod.success);
  if (zod.success) expect(zod.data, text).toEqual(raw); // the fast path hands on the parsed value itself
  const fast = parseCheckpointBody(raw);
  expect(fast.success).toBe(zod.success);
  if (!fast.success && !zod.success) expect(fast.error.issues).toEqual(zod.error.issues); // the same 400 message
  return zod.success;
}

describe("the checkpoint body's fast check", () => {
  it("accepts a valid body, with and without its optional fields and with extra keys", () => {
    expect(agree(body(baseTop(), [baseOp()]))).toBe(true);
    expect(agree(body({ run_id: '"r"', fn_id: '"f"', qi_id: '"q"' }, [{ id: '"a"', op: '"Step"' }]))).toBe(true);
    expect(agree(body({ ...baseTop(), request_id: "null", ts: "null" }, []))).toBe(true);
    expect(agree(body({ ...baseTop(), extra: '{"deep":[1,2]}' }, [{ ...baseOp(), extra: "[]", opts: "null" }]))).toBe(true);
  });

  it("agrees with the schema for every field of the body set to every kind of value, or left out", () => {
    let rejected = 0;
    for (const k of TOP) {
      for (const v of [...VALUES, ABSENT]) if (!agree(body({ ...baseTop(), [k]: v }, k === "steps" ? (v ?? "null") : [baseOp()]))) rejected++;
    }
    expect(rejected).toBeGreaterThan(50); // the cases above do exercise rejection
  });

  it("agrees with the schema for every field of a step set to every kind of value, or left out", () => {
    let rejected = 0;
    for (const k of OP) {
      for (const v of [...VALUES, ABSENT]) {
        if (!agree(body(baseTop(), [baseOp(), { ...baseOp(), [k]: v }]))) rejected++;
        agree(body(baseTop(), [{ ...baseOp(), userland: v }]));
        agree(body(baseTop(), [{ ...baseOp(), userland: v === undefined ? undefined : `{"id":${v}}` }]));
      }
    }
    expect(rejected).toBeGreaterThan(30);
    for (const steps of ["[null]", "[1]", '["x"]', "[[]]", "[{}]", "{}", '{"0":{}}']) agree(body(baseTop(), steps));
    for (const whole of ["null", "1", '"x"', "[]", "[{}]", "{}", "true"]) agree(whole);
  });

  it("agrees with the schema on random combinations (seeded)", () => {
    let seed = 42;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const pick = () => (rnd(4) === 0 ? ABSENT : VALUES[rnd(VALUES.length)]);
    let ok = 0;
    for (let i = 0; i < 3000; i++) {
      const top = baseTop();
      for (let m = rnd(3); m > 0; m--) top[TOP[rnd(TOP.length)]!] = pick();
      const ops = Array.from({ length: rnd(3) }, () => {
        const op = baseOp();
        for (let m = rnd(3); m > 0; m--) op[OP[rnd(OP.length)]!] = pick();
        return op;
      });
      if (agree(body(top, ops))) ok++;
    }
    expect(ok).toBeGreaterThan(100);
    expect(ok).toBeLessThan(2900);
  });
});
