// Children of `npm run dev` that outlive a launcher killed hard (kill -9, a closed terminal): each is recorded
// in the data directory with its start time, and the next start ends the recorded ones still alive — only if
// the pid still names the same process (same start time), never a recycled pid.
import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";

export const PROCESS_FILE = "dev-processes.json";

export interface RecordedProcess {
  name: string;
  pid: number;
  /** /proc/<pid>/stat start time (clock ticks since boot): tells a live child from a recycled pid. */
  startTime: string;
  /** The child leads its own process group (detached): end the whole group. */
  group: boolean;
}

async function startTimeOf(pid: number): Promise<string | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => undefined);
  if (!stat) return undefined;
  // Field 22; the command (field 2) may contain spaces, so count from the closing parenthesis. A zombie (state
  // Z) is gone for our purposes: it holds no port and no file.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return fields[0] === "Z" ? undefined : fields[19];
}

async function readRecords(dataDir: string): Promise<RecordedProcess[]> {
  const file = join(dataDir, PROCESS_FILE);
  if (!existsSync(file)) return [];
  try {
    return JSON.parse(await readFile(file, "utf8")) as RecordedProcess[];
  } catch {
    return [];
  }
}

/** Records a child so that a later start can end it if this launcher dies without doing so. */
export async function recordProcess(dataDir: string, name: string, pid: number, group: boolean): Promise<void> {
  const startTime = (await startTimeOf(pid)) ?? "";
  const records = (await readRecords(dataDir)).filter((r) => r.name !== name);
  records.push({ name, pid, startTime, group });
  await writeFile(join(dataDir, PROCESS_FILE), JSON.stringify(records));
}

/** Forgets every record (after a clean stop). */
export async function clearRecords(dataDir: string): Promise<void> {
  await writeFile(join(dataDir, PROCESS_FILE), "[]").catch(() => {});
}

/** Ends recorded processes of an earlier launcher that are still alive; returns what it ended. */
export async function reapRecorded(dataDir: string, log: (line: string) => void = () => {}, graceMs = 5_000): Promise<string[]> {
  const ended: string[] = [];
  for (const r of await readRecords(dataDir)) {
    if (!r.startTime || (await startTimeOf(r.pid)) !== r.startTime) continue;
    log(`ending ${r.name} (pid ${r.pid}) left running by an earlier start`);
    const kill = (sig: NodeJS.Signals) => {
      try {
        process.kill(r.group ? -r.pid : r.pid, sig);
      } catch {
        /* gone */
      }
    };
    kill("SIGTERM");
    const deadline = Date.now() + graceMs;
    while ((await startTimeOf(r.pid)) === r.startTime && Date.now() < deadline) await new Promise((res) => setTimeout(res, 100));
    if ((await startTimeOf(r.pid)) === r.startTime) kill("SIGKILL");
    ended.push(`${r.name} (pid ${r.pid})`);
  }
  await clearRecords(dataDir);
  return ended;
}
