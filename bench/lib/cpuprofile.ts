// Summarizes V8 .cpuprofile files (node --cpu-prof): self time by package / source area and the hottest
// functions. Bundled Next.js chunks are mapped back to their sources through the build's .js.map files, so
// time inside the route bundle is credited to @supabase/*, inngest, zod, lib/... rather than to a chunk name.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { SourceMap } from "node:module";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  files: number;
  totalMs: number;
  /** Idle excluded; (garbage collector) and (program) kept. */
  busyMs: number;
  /** Self time by the package or source folder of the running function. */
  byArea: [string, number][];
  /** The same samples credited to the innermost caller that is a package or app code (not node internals). */
  byOwner: [string, number][];
  topFunctions: [string, number][];
  /** Busy time by stage of a request (STAGES, first match on the sample's whole stack), module loading included. */
  byStage: [string, number][];
}

/**
 * The stages of a POST /api/tasks in next-server, matched against the source files (after source maps) of a sample's
 * whole stack, first match wins: so time in node:http under the Supabase call counts as the call, and Next's own
 * request handling is what is left under next/.
 */
export const STAGES: [string, RegExp][] = [
  ["startup, module loading", /cjs\/loader|require-hook|load-components|lazy-module|esm\/loader|run_main/],
  ["outbox relay (after())", /outbox-relay|after-context|after\/after/],
  ["database call (supabase-js + fetch)", /keepalive-fetch|supabase-js|postgrest-js|patch-fetch|dedupe-fetch|undici.*fetch|auth-js/],
  ["route handler (auth, body, zod, hash, answer)", /app\/api\/|lib\/http|lib\/tasks|lib\/api-keys|zod|canonicalize/],
  ["proxy.ts (Next's middleware adapter)", /adapter\.js|proxy\.ts|next-request|middleware/],
  ["Next request handling and response", /next\//],
];

const maps = new Map<string, SourceMap | null>();
function sourceMapFor(url: string): SourceMap | null {
  if (maps.has(url)) return maps.get(url)!;
  let map: SourceMap | null = null;
  try {
    const path = url.startsWith("file://") ? fileURLToPath(url) : url;
    if (path.startsWith("/") && existsSync(`${path}.map`)) {
      map = new SourceMap(JSON.parse(readFileSync(`${path}.map`, "utf8")));
    }
  } catch {
    map = null;
  }
  maps.set(url, map);
  return map;
}

/** The frame's source file after its source map (node: and native frames by name). */
function sourceFile(frame: CallFrame): string {
  if (!frame.url) return frame.functionName;
  const map = sourceMapFor(frame.url);
  const e = map?.findEntry(frame.lineNumber, frame.columnNumber) as { originalSource?: string } | undefined;
  return e?.originalSource ?? frame.url;
}

/** Where a frame's code comes from, as a short label. */
function locate(frame: CallFrame): { area: string; where: string } {
  const fn = frame.functionName || "(anonymous)";
  if (!frame.url) return { area: fn.startsWith("(") ? fn : "(native/V8)", where: fn };
  let file = frame.url;
  let line = frame.lineNumber + 1;
  const map = sourceMapFor(frame.url);
  if (map) {
    const e = map.findEntry(frame.lineNumber, frame.columnNumber) as { originalSource?: string; originalLine?: number };
    if (e?.originalSource) {
      file = e.originalSource;
      line = (e.originalLine ?? 0) + 1;
    }
  }
  file = file.replace(/^file:\/\//, "").replace(/^turbopack:\/\/\/?(\[project\]\/)?/, "");
  try {
    file = decodeURIComponent(file);
  } catch {}
  // Turbopack's composed maps drop the package name of inngest's own sources: node_modules/src/{components,helpers,...}.
  file = file.replace(/node_modules\/src\//, "node_modules/inngest/src/");
  let area: string;
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)(\/.*)?$/.exec(file);
  if (file.startsWith("node:")) area = `node:${file.slice(5).split("/")[file.startsWith("node:internal") ? 1 : 0] ?? ""}`;
  else if (nm) {
    area = nm[1]!;
    // Next's own runtime is big: split it one level down.
    if (area === "next") area = `next/${/dist\/(compiled\/[^/]+|[^/]+\/[^/]+)/.exec(nm[2] ?? "")?.[1] ?? "?"}`;
  } else {
    const rel = /(?:^|\/)(app|lib|inngest|local)\/(.*)$/.exec(file);
    area = rel ? `app ${rel[1]}/${rel[2]!.includes("/") ? rel[2]!.split("/")[0] : ""}` : file.split("/").slice(-2).join("/");
  }
  const short = file.split("/").slice(-2).join("/");
  return { area, where: `${fn} ${short}:${line}` };
}

export function summarizeProfiles(dir: string): ProfileSummary | null {
  if (!existsSync(dir)) return null;
  const files = readdirSync(dir).filter((f) => f.endsWith(".cpuprofile"));
  if (!files.length) return null;
  const byArea = new Map<string, number>();
  const byFn = new Map<string, number>();
  const byOwner = new Map<string, number>();
  const byStage = new Map<string, number>();
  let totalMs = 0;
  let idleMs = 0;
  for (const f of files) {
    const p = JSON.parse(readFileSync(join(dir, f), "utf8")) as Profile;
    const nodes = new Map(p.nodes.map((n) => [n.id, n]));
    const parent = new Map<number, number>();
    for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
    const located = new Map<number, { area: string; where: string }>();
    const loc = (n: ProfileNode) => {
      let l = located.get(n.id);
      if (!l) located.set(n.id, (l = locate(n.callFrame)));
      return l;
    };
    const stages = new Map<number, string>();
    const stageOf = (n: ProfileNode): string => {
      const fn = n.callFrame.functionName;
      if (fn === "(garbage collector)" || fn === "(program)") return fn;
      let st = stages.get(n.id);
      if (st) return st;
      const files: string[] = [];
      for (let cur: ProfileNode | undefined = n; cur; cur = nodes.get(parent.get(cur.id) ?? -1)) files.push(sourceFile(cur.callFrame));
      const stack = files.join("\n");
      st = STAGES.find(([, re]) => re.test(stack))?.[0] ?? "node internals (http, streams, timers)";
      stages.set(n.id, st);
      return st;
    };
    const owners = new Map<number, string>();
    const ownerOf = (n: ProfileNode): string => {
      const known = owners.get(n.id);
      if (known) return known;
      let owner: string | undefined;
      for (let cur: ProfileNode | undefined = n; cur; cur = nodes.get(parent.get(cur.id) ?? -1)) {
        const a = loc(cur).area;
        if (!a.startsWith("node:") && !a.startsWith("(")) {
          owner = a;
          break;
        }
      }
      owner ??= loc(n).area;
      owners.set(n.id, owner);
      return owner;
    };
    for (let i = 0; i < p.samples.length; i++) {
      const ms = (p.timeDeltas[i + 1] ?? p.timeDeltas[i] ?? 0) / 1000;
      const node = nodes.get(p.samples[i]!);
      if (!node) continue;
      totalMs += ms;
      if (node.callFrame.functionName === "(idle)") {
        idleMs += ms;
        continue;
      }
      const l = loc(node);
      byArea.set(l.area, (byArea.get(l.area) ?? 0) + ms);
      byFn.set(l.where, (byFn.get(l.where) ?? 0) + ms);
      const st = stageOf(node);
      byStage.set(st, (byStage.get(st) ?? 0) + ms);
      const o = ownerOf(node);
      byOwner.set(o, (byOwner.get(o) ?? 0) + ms);
    }
  }
  const top = (m: Map<string, number>, n: number) => [...m].sort((a, b) => b[1] - a[1]).slice(0, n);
  return { files: files.length, totalMs, busyMs: totalMs - idleMs, byArea: top(byArea, 14), byOwner: top(byOwner, 14), topFunctions: top(byFn, 14), byStage: top(byStage, 20) };
}
