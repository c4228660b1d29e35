// The double's Message Batches kept in the data directory, so a batch task in flight survives a restart of
// `npm run dev` (the real API keeps batches for 29 days). Without a directory (tests), batches live in memory.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export const BATCH_FILE = "claude-batches.json";

/** A persistent map: the whole (small) map is rewritten atomically after each change. */
export class BatchStore<B extends { id: string }> {
  readonly map = new Map<string, B>();
  private readonly file: string | undefined;

  constructor(dataDir: string | undefined) {
    this.file = dataDir ? join(dataDir, BATCH_FILE) : undefined;
    if (!this.file) return;
    mkdirSync(dataDir!, { recursive: true });
    let text: string | undefined;
    try {
      text = readFileSync(this.file, "utf8");
    } catch {
      return; // first start
    }
    for (const b of JSON.parse(text) as B[]) this.map.set(b.id, b);
  }

  /** Writes the map; call after any change to a batch (create, cancel, delete, clear). */
  save(): void {
    if (!this.file) return;
    const tmp = `${this.file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify([...this.map.values()]));
    renameSync(tmp, this.file);
  }
}
