// The local engine as its own process (local/engine/main.ts), for tests that kill it with SIGKILL and restart it on
// the same database: what a crash does to it, which an in-process engine cannot show.
import { spawn, type ChildProcess } from "node:child_process";
import type { EngineMode } from "../../local/engine";

export interface EngineProcess {
  proc: ChildProcess;
  output: string[];
}

export interface EngineProcessOptions {
  databaseUrl: string;
  port: number;
  mode?: EngineMode;
  /** --journal-dir: a directory, or "off" (Postgres is the durable point). */
  journalDir?: string;
  /** Extra environment, e.g. the journal's test hook INNGEST_ENGINE_JOURNAL_HOLD=1. */
  env?: Record<string, string>;
}

/** Starts the CLI engine and resolves once it printed its ready line. */
export async function startEngineProcess(o: EngineProcessOptions): Promise<EngineProcess> {
  const args = ["--import", "tsx", "local/engine/main.ts", "--database-url", o.databaseUrl, "--port", String(o.port), "--mode", o.mode ?? "checkpoint"];
  if (o.journalDir) args.push("--journal-dir", o.journalDir);
  const proc = spawn(process.execPath, args, {
    cwd: process.cwd(),
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...o.env },
  });
  const output: string[] = [];
  const ready = new Promise<void>((resolve, reject) => {
    const onData = (b: Buffer) => {
      output.push(b.toString());
      if (output.join("").includes('"ready":true')) resolve();
    };
    proc.stdout!.on("data", onData);
    proc.stderr!.on("data", (b: Buffer) => output.push(b.toString()));
    proc.once("exit", (code) => reject(new Error(`engine exited early (${code}): ${output.join("")}`)));
  });
  await ready;
  return { proc, output };
}

export async function kill9(c: EngineProcess): Promise<void> {
  if (c.proc.exitCode !== null || c.proc.signalCode !== null) return;
  const exited = new Promise((r) => c.proc.once("exit", r));
  c.proc.kill("SIGKILL");
  await exited;
}
