// A real full disk for fault tests: a small tmpfs mounted for the test, and a filler file that takes every byte left
// (writes then fail with ENOSPC, as on a full disk), removed to give the space back. Mounting needs root (or
// CAP_SYS_ADMIN); where it is not possible, `mountTinyDisk` says why and the test skips itself loudly with that reason.
import { execFileSync } from "node:child_process";
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface TinyDisk {
  /** The mount point. */
  dir: string;
  /** Takes every byte left on it. */
  fill(): void;
  /** Gives back what fill() took. */
  free(): void;
  unmount(): void;
}

/** A tmpfs of `kb` KiB, or the reason it cannot be mounted here (the caller skips, naming it). */
export function mountTinyDisk(kb: number): TinyDisk | { skip: string } {
  const dir = mkdtempSync(join(tmpdir(), "nightshift-tinydisk-"));
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", `size=${kb}k,mode=0777`, "tmpfs", dir], { stdio: "pipe" });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    const why = (err as { stderr?: Buffer }).stderr?.toString().trim() || (err as Error).message;
    return { skip: `cannot mount a tmpfs to make a full disk here (${why}); needs root or CAP_SYS_ADMIN` };
  }
  const filler = join(dir, "filler");
  return {
    dir,
    fill() {
      const fd = openSync(filler, "a");
      const chunk = Buffer.alloc(64 * 1024, 1);
      try {
        for (;;) writeSync(fd, chunk);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "ENOSPC") throw err;
      } finally {
        closeSync(fd);
      }
    },
    free() {
      rmSync(filler, { force: true });
    },
    unmount() {
      try {
        execFileSync("umount", ["-l", dir], { stdio: "pipe" });
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
