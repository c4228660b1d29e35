// Finds a free TCP port on loopback, for servers whose port the caller does not fix.
import { createServer } from "node:net";

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === "object" && addr ? resolve(addr.port) : reject(new Error("no port"))));
    });
  });
}

/** True when nothing listens on 127.0.0.1:`port` (we could bind it). */
export function portIsFree(port: number, host = "127.0.0.1"): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once("error", () => resolve(false));
    srv.listen(port, host, () => srv.close(() => resolve(true)));
  });
}

/**
 * Which process listens on `port`, when Linux /proc can tell: "pid 1234 (next-server (v16))". Reads the
 * listening socket's inode from /proc/net/tcp{,6} and finds the process holding it; undefined when unknown
 * (another OS, or a process of another user).
 */
export async function portOwner(port: number): Promise<string | undefined> {
  const { readFile, readdir, readlink } = await import("node:fs/promises");
  const inodes = new Set<string>();
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    const text = await readFile(table, "utf8").catch(() => "");
    for (const line of text.split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      // local_address is HEXIP:HEXPORT; state 0A = LISTEN; inode is column 10
      if (f.length > 9 && f[3] === "0A" && parseInt(f[1]!.split(":").at(-1)!, 16) === port) inodes.add(f[9]!);
    }
  }
  if (!inodes.size) return undefined;
  const pids = (await readdir("/proc").catch(() => [] as string[])).filter((d) => /^\d+$/.test(d));
  for (const pid of pids) {
    const fds = await readdir(`/proc/${pid}/fd`).catch(() => [] as string[]);
    for (const fd of fds) {
      const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => "");
      const m = /^socket:\[(\d+)\]$/.exec(target);
      if (m && inodes.has(m[1]!)) {
        const cmd = (await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "")).split("\0").filter(Boolean).join(" ");
        return `pid ${pid}${cmd ? ` (${cmd.slice(0, 120)})` : ""}`;
      }
    }
  }
  return undefined;
}

/** Checks every port before anything starts; the error names each taken port, its use and, if known, its owner. */
export async function assertPortsFree(ports: { port: number; use: string }[]): Promise<void> {
  const taken: string[] = [];
  for (const p of ports) {
    if (await portIsFree(p.port)) continue;
    const owner = await portOwner(p.port);
    taken.push(`port ${p.port} (${p.use}) is taken${owner ? ` by ${owner}` : ""}`);
  }
  if (taken.length) throw new Error(`${taken.join("; ")}. Stop that process or choose another port (see README, configuration).`);
}
