// Generators for the fuzz suite: a seeded PRNG (mulberry32) and request parts built from it — methods, paths from
// the app's own route files, headers, and bodies mixing valid shapes with what broke the API before (NUL, lone
// surrogates, deep nesting, huge key counts, forged cursors, malformed escapes). Same seed, same requests.
import { readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";

export type Rng = () => number;

export function mulberry32(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[Math.floor(rng() * xs.length)]!;
const int = (rng: Rng, lo: number, hi: number) => lo + Math.floor(rng() * (hi - lo + 1));

/** Every route of the app as a path template (`/api/tasks/[id]`), read from app/ so new routes are fuzzed too. */
export function appRoutes(appDir: string): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const full = join(dir, name);
      if (statSync(full).isDirectory()) walk(full);
      else if (/^(route|page)\.tsx?$/.test(name)) {
        const rel = relative(appDir, dir).split("/").filter((s) => s && !/^\(.*\)$/.test(s));
        out.push(`/${rel.join("/")}`);
      }
    }
  };
  walk(appDir);
  return [...new Set(out)].sort();
}

const SEGMENTS = [
  "00000000-0000-4000-8000-000000000000",
  "not-a-uuid",
  "%zz",
  "%",
  "%E0%A4%A",
  "%00",
  "%2e%2e",
  "..",
  "%ff%fe",
  "a".repeat(300),
  "%F0%9F%98%80",
  "'%20or%201=1--",
  "<script>",
  "%5C",
  "x;y=1",
  // Names that exist in the fuzzed deployment (an agent, a webhook source, a peer), bare and percent-escaped.
  "research",
  "fuzz-src",
  "%66uzz-src",
  "FUZZ-SRC",
  "fuzz-peer",
];

/** A path for a route template; `live` are ids of rows that exist (a task, an approval, a dead letter, a schedule), so
 * that half the id segments reach past "not found" into the handlers' real work (cancel, decide, replay, discard). */
export function concretePath(rng: Rng, template: string, live: readonly string[] = []): string {
  const segment = () => (live.length > 0 && rng() < 0.5 ? pick(rng, live) : pick(rng, SEGMENTS));
  let path = template.replace(/\[\.\.\.[^\]]+\]/g, () => Array.from({ length: int(rng, 1, 3) }, () => pick(rng, SEGMENTS)).join("/"));
  path = path.replace(/\[[^\]]+\]/g, segment);
  if (rng() < 0.15) path += `/${pick(rng, SEGMENTS)}`;
  if (rng() < 0.3) path += `?${query(rng)}`;
  return path;
}

function query(rng: Rng): string {
  const keys = ["status", "agent", "limit", "cursor", "next", "fnId", "stepId", "x", "window", "tab"];
  const values = [
    "queued",
    "%00",
    "-1",
    "1e309",
    "999999999999",
    "eyJjIjoiMjAyNi0wMS0wMVQwMDowMDowMFoiLCJpIjoiMDAwMDAwMDAtMDAwMC0wMDAwLTAwMDAtMDAwMDAwMDAwMDAwIn0",
    Buffer.from(JSON.stringify({ c: '2026")or(id.gt.0', i: "00000000-0000-0000-0000-000000000000" })).toString("base64url"),
    Buffer.from(JSON.stringify({ c: "1", i: "00000000-0000-0000-0000-000000000000" })).toString("base64url"),
    "%ED%A0%80",
    "/.//evil.example",
    "%zz",
    "",
    "a,b",
  ];
  return Array.from({ length: int(rng, 1, 3) }, () => `${pick(rng, keys)}=${pick(rng, values)}`).join("&");
}

export const METHODS = ["GET", "GET", "POST", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD", "TRACE", "PROPFIND", "M-SEARCH"];

const WEIRD_STRINGS = ["", "\u0000", "a\u0000b", "\ud800", "x\udfff", "😀", "\u202e", "' or 1=1 --", "<img src=x onerror=alert(1)>", "%", "a".repeat(5000)];

export function jsonValue(rng: Rng, depth = 0): unknown {
  const r = rng();
  if (depth > 4 || r < 0.35) {
    return pick(rng, [
      () => pick(rng, WEIRD_STRINGS),
      () => int(rng, -5, 5),
      () => pick(rng, [1e308, -0, 2 ** 63, Number.MAX_SAFE_INTEGER + 2, 0.1]),
      () => pick(rng, [true, false, null]),
      () => "research",
    ])();
  }
  if (r < 0.6) return Array.from({ length: int(rng, 0, 4) }, () => jsonValue(rng, depth + 1));
  const o: Record<string, unknown> = {};
  for (let i = int(rng, 0, 4); i > 0; i--) o[pick(rng, [...WEIRD_STRINGS.slice(0, 6), "agent", "prompt", "input", "__proto__", "constructor"])] = jsonValue(rng, depth + 1);
  return o;
}

/** JSON text nested `depth` levels (as text: JSON.stringify itself overflows on such values). */
export function nestedJson(depth: number): string {
  return `${'{"a":['.repeat(Math.ceil(depth / 2))}1${"]}".repeat(Math.ceil(depth / 2))}`;
}


/** A body: usually JSON close to a real request, sometimes hostile, sometimes not JSON at all. */
export function body(rng: Rng): { text: string | Uint8Array; contentType: string | null } {
  const kind = rng();
  // A DEEP marker inside the value is replaced by deeply nested JSON text after stringifying.
  const json = (v: unknown, deep = 0) => ({ text: JSON.stringify(v).replace('"__DEEP__"', nestedJson(deep)), contentType: pick(rng, ["application/json", "application/json; charset=utf-8", "application/vnd.x+json", "text/plain", null]) });
  if (kind < 0.35) {
    const base: Record<string, unknown> = {
      agent: pick(rng, ["research", "content", "outreach", "nope", "\u0000", 7]),
      prompt: pick(rng, ["Summarise the news.", "\u0000", "a\ud800b", "", " ", 42, "x".repeat(200_001)]),
    };
    let deep = 0;
    if (rng() < 0.5) {
      base.input = pick(rng, [
        () => jsonValue(rng),
        () => {
          deep = int(rng, 30, 6000);
          return "__DEEP__";
        },
        () => Object.fromEntries(Array.from({ length: 11_000 }, (_, i) => [`k${i}`, i])),
      ])();
    }
    if (rng() < 0.3) base.callback_url = pick(rng, ["http://169.254.169.254/", "https://example.com/hook", "javascript:alert(1)", "http://[::1]/"]);
    if (rng() < 0.3) base.decision = pick(rng, ["approve", "reject", "approve_with_changes", "\u0000"]);
    if (rng() < 0.3) base.notes = pick(rng, WEIRD_STRINGS);
    if (rng() < 0.3) base.reason = pick(rng, WEIRD_STRINGS);
    if (rng() < 0.2) base.steps = jsonValue(rng);
    // Session 3 fields: overnight mode, deadlines, peers, agent defaults, a replay's edited prompt.
    if (rng() < 0.25) base.mode = pick(rng, ["now", "batch", "auto", "AUTO", null, 1]);
    if (rng() < 0.25) base.deadline = pick(rng, DEADLINES);
    if (rng() < 0.2) base.next_hop = pick(rng, ["fuzz-peer", "nowhere", "off-peer", "", ["fuzz-peer"], "\u0000"]);
    if (rng() < 0.15) base.default_mode = pick(rng, ["now", "batch", "auto", "", null]);
    return json(base, deep);
  }
  if (kind < 0.45) return json(webhookSource(rng));
  if (kind < 0.6) return json(jsonValue(rng));
  if (kind < 0.7) return json("__DEEP__", int(rng, 10, 8000));
  if (kind < 0.8) return { text: pick(rng, ["{", "[1,", "nul", '{"a":"\\ud800"}', '{"a":"\\u0000"}', "\u0000", "{}}"]), contentType: "application/json" };
  if (kind < 0.9) return { text: crypto.getRandomValues(new Uint8Array(int(rng, 0, 512))), contentType: pick(rng, ["application/json", "application/octet-stream", "multipart/form-data; boundary=x", "application/x-www-form-urlencoded"]) };
  return { text: `a=${formEncode(pick(rng, WEIRD_STRINGS))}&password=x&next=%2F.%2F%2Fevil`, contentType: "application/x-www-form-urlencoded" };
}

const DEADLINES = [
  "2026-11-30T07:00:00Z",
  "0000-01-01T00:00:00Z",
  "9999-12-31T23:59:59-23:59",
  "+275760-09-13T00:00:00Z",
  "2026-02-30T00:00:00Z",
  "2026-11-30T07:00:00",
  "1969-12-31T23:59:59Z",
  1e308,
  -1,
  "",
  null,
];

/** A body shaped like POST /api/webhook-sources or a PATCH of one: valid fields mixed with hostile ones. */
function webhookSource(rng: Rng): Record<string, unknown> {
  const b: Record<string, unknown> = {};
  if (rng() < 0.7) b.name = pick(rng, ["fuzz-src", `fz-${int(rng, 0, 9)}`, "Bad Name", "a".repeat(64), "\u0000", "ſ", 7, ["x"]]);
  if (rng() < 0.7) b.agent = pick(rng, ["research", "content", "nope", "", null]);
  if (rng() < 0.7) b.prompt_template = pick(rng, ["Handle {{payload.x}}", " ", "x".repeat(20_001), ...WEIRD_STRINGS.slice(0, 5)]);
  if (rng() < 0.7) {
    b.secret_env_names = pick(rng, [
      ["FUZZ_SRC_SECRET"],
      [],
      ["NIGHTSHIFT_WEBHOOK_SECRET"],
      ["ANTHROPIC_API_KEY"], // (not SUPABASE_SECRET_KEY: a task echoing a body with that name trips the leak check)
      ["lower_case"],
      Array.from({ length: 6 }, (_, i) => `VAR_${i}_X`),
      "FUZZ_SRC_SECRET",
      [null],
    ]);
  }
  if (rng() < 0.4) b.input_mapping = pick(rng, [{ issue: "payload.issue.number" }, { "": "x" }, { k: "a..b" }, JSON.parse('{"__proto__":"a.b"}'), ["a"], jsonValue(rng)]);
  if (rng() < 0.3) b.callback_url = pick(rng, ["https://example.com/hook", "http://169.254.169.254/", "javascript:alert(1)", null, "http://u:p@example.com/"]);
  if (rng() < 0.3) b.mode = pick(rng, ["now", "batch", "auto", 0]);
  if (rng() < 0.3) b.enabled = pick(rng, [true, false, "false", null, 0]);
  if (rng() < 0.3) b.require_approval = pick(rng, [true, false, "yes"]);
  if (rng() < 0.2) b.description = pick(rng, WEIRD_STRINGS);
  if (rng() < 0.1) b[pick(rng, ["id", "created_at", "secret", "refusals"])] = jsonValue(rng);
  return b;
}

/** A signed-in operator's cookie and the same-origin headers a console page's own requests carry. */
export interface ConsoleSession {
  cookie: string;
  origin: string;
  host: string;
}

export function headers(rng: Rng, apiKey: string, session?: ConsoleSession): Record<string, string> {
  const h: Record<string, string> = {};
  const auth = rng();
  if (auth < 0.55) h.authorization = `Bearer ${apiKey}`;
  else if (auth < 0.7) h.authorization = pick(rng, ["Bearer ", "Bearer x", "Basic Zm9vOmJhcg==", `Bearer ${apiKey}x`, `bearer  ${apiKey}`, "Bearer ns_" + "a".repeat(4000)]);
  // Signed in, from the console's own origin: pages render and server actions (made-up ids, no CSRF token) answer.
  if (session && rng() < 0.3) {
    h.cookie = session.cookie;
    if (rng() < 0.7) Object.assign(h, { origin: session.origin, host: session.host, "sec-fetch-site": "same-origin" });
    if (rng() < 0.4) h["next-action"] = pick(rng, ["0".repeat(40), `7f${"a".repeat(40)}`, "x", "%00", "a".repeat(300)]);
  }
  if (rng() < 0.3) h["idempotency-key"] = pick(rng, ["k1", "a".repeat(300), "with space", "é", `k-${int(rng, 0, 5)}`]);
  if (rng() < 0.2) h.origin = pick(rng, ["https://evil.example", "null", "http://127.0.0.1"]);
  if (rng() < 0.2) h["x-forwarded-for"] = pick(rng, ["1.2.3.4", "::1, 10.0.0.1", "garbage", "", "1.1.1.1".repeat(50)]);
  if (rng() < 0.1) h["x-inngest-signature"] = pick(rng, ["t=1&s=00", "garbage"]);
  if (rng() < 0.1) h["x-inngest-sync-kind"] = pick(rng, ["in_band", "out_of_band"]);
  if (rng() < 0.1) h.cookie = pick(rng, ["ns_session=x.y", "ns_session=" + "a".repeat(2000), "ns_session=%zz"]);
  if (rng() < 0.1) h.accept = pick(rng, ["text/html", "*/*", "application/json"]);
  // What browsers add (a web page's request to the unsigned serve route, a navigation), and big-but-legal headers
  // (Node refuses a header block over 16 KB before the app; tests/e2e/fuzz.test.ts checks that answer on its own).
  if (rng() < 0.15) h["sec-fetch-site"] = pick(rng, ["cross-site", "same-site", "same-origin", "none", "garbage"]);
  if (rng() < 0.05) h["x-padding"] = "p".repeat(int(rng, 1000, 12_000));
  if (rng() < 0.05) h["content-type"] = pick(rng, ["text/plain;charset=UTF-8", "application/json; charset=latin1", "multipart/form-data; boundary=x", "application/x-www-form-urlencoded"]);
  return h;
}

/** encodeURIComponent, except that a lone surrogate (which it refuses) is sent as the bytes a careless client would. */
function formEncode(s: string): string {
  try {
    return encodeURIComponent(s);
  } catch {
    return "%ED%A0%80";
  }
}
