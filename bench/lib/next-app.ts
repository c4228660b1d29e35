// Shared parts of bench/approvals.ts and bench/console.ts: one production build, `next start` as a child in its own
// process group, a cleanup stack that runs on exit and on SIGINT/SIGTERM, a keep-alive HTTP client that times
// the first byte and the last, and the machine line every report starts with.
//
// Nothing here imports lib/db/admin.ts or lib/db/server.ts: both start with `import "server-only"`, which throws
// outside a React Server bundle. adminClient() builds the same supabase-js client with the same options.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { Agent, request } from "node:http";
import { cpus, totalmem } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createClient, type SupabaseClientOptions } from "@supabase/supabase-js";
import WebSocket from "ws";
import type { AdminClient } from "../../lib/db/admin";
import type { Database } from "../../lib/db/database.types";
import { freePort } from "../../local/ports";

export const root = fileURLToPath(new URL("../..", import.meta.url));
/** The same build folder as bench/submit.ts (git-ignored). */
export const DIST_DIR = ".next-bench";

export const log = (s: string) => console.log(`[bench] ${s}`);

/** `next build` into DIST_DIR. It rewrites tsconfig.json and next-env.d.ts for its distDir; they are put back. */
export function build(): void {
  const keep = ["tsconfig.json", "next-env.d.ts"].map((f) => {
    const path = join(root, f);
    try {
      return { path, text: readFileSync(path, "utf8") as string | null };
    } catch {
      return { path, text: null };
    }
  });
  const started = Date.now();
  try {
    const res = spawnSync(process.execPath, ["node_modules/next/dist/bin/next", "build"], {
      cwd: root,
      env: { ...process.env, NIGHTSHIFT_DIST_DIR: DIST_DIR, NIGHTSHIFT_SKIP_BUILD_TYPECHECK: "1", NEXT_TELEMETRY_DISABLED: "1" },
      encoding: "utf8",
      maxBuffer: 64 * 1024 * 1024,
    });
    if (res.status !== 0) throw new Error(`next build failed (${res.status ?? res.signal}):\n${res.stdout}\n${res.stderr}`);
  } finally {
    for (const k of keep) {
      if (k.text === null) continue;
      let now: string | null = null;
      try {
        now = readFileSync(k.path, "utf8");
      } catch {}
      if (now !== k.text) writeFileSync(k.path, k.text);
    }
  }
  log(`next build into ${DIST_DIR} done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

/** Builds unless `--no-build` was given. */
export function buildUnlessAsked(args: Set<string>): void {
  if (args.has("--no-build")) log(`--no-build: using the existing ${DIST_DIR}`);
  else build();
}

export async function waitUntil(check: () => Promise<boolean>, timeoutMs: number, what: string, tail?: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      if (await check()) return;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      const why = last instanceof Error ? ` (last error: ${last.message})` : "";
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}${tail ? `\n${tail()}` : ""}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

type WebSocketTransport = NonNullable<NonNullable<SupabaseClientOptions<"public">["realtime"]>["transport"]>;

/** lib/db/admin.ts's createAdminClient, built here (that module is `server-only`). */
export function adminClient(url: string, secretKey: string): AdminClient {
  return createClient<Database>(url, secretKey, {
    auth: { persistSession: false, autoRefreshToken: false },
    realtime: { transport: WebSocket as unknown as WebSocketTransport },
    accessToken: async () => secretKey,
  });
}

// Process groups this bench started and has not seen exit: killed (SIGKILL) when the bench process exits by any path,
// so an interrupted bench never leaves a `next start` behind. (SIGTERM alone was not enough: a next-server in its
// graceful shutdown waits for its after() work, e.g. a relay pass to an engine that is gone, and an interrupted bench
// could exit before its 5 s SIGKILL fallback; such orphans spun at 25–37 % CPU each.)
const liveGroups = new Set<number>();
process.on("exit", () => {
  for (const g of liveGroups) {
    try {
      process.kill(-g, "SIGKILL");
    } catch {}
  }
});

/** Kills the child's process group (it must be spawned `detached`) if it is still running when this process exits. */
export function killGroupOnExit(proc: ChildProcess): void {
  const g = proc.pid;
  if (!g) return;
  liveGroups.add(g);
  proc.once("exit", () => liveGroups.delete(g));
}

export interface NextServer {
  url: string;
  proc: ChildProcess;
  lines: string[];
  tail(): string;
  /** SIGTERM to the process group, SIGKILL after 5 s. */
  stop(): Promise<void>;
}

/** `next start` on DIST_DIR, in its own process group; resolves once `readyPath` answers (any status < 500). */
export async function startNext(
  env: Record<string, string>,
  opts: {
    readyPath?: string;
    /** write V8 CPU profiles of the server here */
    profileDir?: string;
    /** more Node arguments for the server (bench/lib/stall-probe.ts) */
    nodeArgs?: string[];
    /** prefix each kept output line with the wall-clock ms it arrived at */
    stampLines?: boolean;
  } = {},
): Promise<NextServer> {
  const readyPath = opts.readyPath ?? "/api/health";
  const prof = opts.profileDir ? ["--cpu-prof", `--cpu-prof-dir=${opts.profileDir}`] : [];
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const proc = spawn(process.execPath, [...prof, ...(opts.nodeArgs ?? []), "node_modules/next/dist/bin/next", "start", "-p", String(port), "-H", "127.0.0.1"], {
    cwd: root,
    stdio: ["ignore", "pipe", "pipe"],
    detached: true, // its own process group: one kill reaches every process `next start` made
    env: { ...process.env, NODE_ENV: "production", NEXT_TELEMETRY_DISABLED: "1", NIGHTSHIFT_DIST_DIR: DIST_DIR, ...env },
  });
  killGroupOnExit(proc);
  const lines: string[] = [];
  for (const s of [proc.stdout, proc.stderr]) {
    s?.setEncoding("utf8");
    s?.on("data", (chunk: string) => {
      const at = opts.stampLines ? `${Date.now()} ` : "";
      for (const l of chunk.split("\n")) if (l.trim()) lines.push(at + l);
      if (lines.length > 5000) lines.splice(0, lines.length - 5000);
    });
  }
  let stopping: Promise<void> | undefined;
  const server: NextServer = {
    url,
    proc,
    lines,
    tail: () => lines.slice(-40).join("\n"),
    stop: () =>
      (stopping ??= (async () => {
        if (proc.exitCode !== null || proc.signalCode !== null || !proc.pid) return;
        const exited = new Promise<void>((r) => proc.once("exit", () => r()));
        const kill = (sig: NodeJS.Signals) => {
          try {
            process.kill(-proc.pid!, sig);
          } catch {}
        };
        kill("SIGTERM");
        const timer = setTimeout(() => kill("SIGKILL"), 5_000);
        await exited;
        clearTimeout(timer);
      })()),
  };
  try {
    await waitUntil(async () => (await fetch(`${url}${readyPath}`, { redirect: "manual" })).status < 500, 60_000, "next start to answer", server.tail);
  } catch (e) {
    await server.stop();
    throw e;
  }
  return server;
}

/** Cleanups run in reverse order, once, at the end or on SIGINT/SIGTERM. */
export function cleanupStack() {
  const steps: (() => Promise<void> | void)[] = [];
  let running: Promise<void> | undefined;
  const run = () =>
    (running ??= (async () => {
      for (const c of steps.reverse()) await Promise.resolve(c()).catch((e: unknown) => console.error(`[bench] cleanup: ${String(e)}`));
    })());
  const onSignal = (sig: NodeJS.Signals) => {
    console.error(`[bench] ${sig}: stopping`);
    void run().then(() => process.exit(130));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  return { push: (c: () => Promise<void> | void) => void steps.push(c), run };
}

export interface Timed {
  status: number;
  /** Request written → response headers (time to first byte), ms. */
  ttfbMs: number;
  /** Request written → last byte of the body, ms. */
  totalMs: number;
  bytes: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** A keep-alive client on one socket, so each timing is the server's work plus one localhost round trip. */
export function keepAliveClient() {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  return {
    get(url: string, headers: Record<string, string> = {}): Promise<Timed> {
      return new Promise((resolve, reject) => {
        const t0 = performance.now();
        const req = request(url, { agent, method: "GET", headers }, (res) => {
          const ttfb = performance.now() - t0;
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => {
            const body = Buffer.concat(chunks);
            resolve({
              status: res.statusCode ?? 0,
              ttfbMs: ttfb,
              totalMs: performance.now() - t0,
              bytes: body.length,
              headers: res.headers,
              body: body.toString("utf8"),
            });
          });
          res.on("error", reject);
        });
        req.setTimeout(30_000, () => req.destroy(new Error(`no answer from ${url} within 30 s`)));
        req.on("error", reject);
        req.end();
      });
    },
    close: () => agent.destroy(),
  };
}

export function machineLine(): string {
  const cpu = cpus();
  return (
    `machine: ${cpu.length} cores (${cpu[0]?.model.trim() ?? "unknown cpu"}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM, ` +
    `node ${process.version}; everything on 127.0.0.1`
  );
}
