// CLI: tsx local/engine/main.ts --database-url postgres://... [--port 8288] [--signing-key ...] [--event-key ...]
//   [--mode checkpoint|classic] [--journal-dir <dir>|off]
import { engineModeFromEnv, startEngine } from "./index";
import { flushTrace } from "./trace";

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : process.env[`INNGEST_ENGINE_${name.toUpperCase().replace(/-/g, "_")}`];
}

const databaseUrl = arg("database-url") ?? process.env["DATABASE_URL"];
if (!databaseUrl) {
  console.error("usage: tsx local/engine/main.ts --database-url <postgres url> [--port <n>] [--signing-key <k>] [--event-key <k>]");
  process.exit(2);
}
const engine = await startEngine({
  databaseUrl,
  port: Number(arg("port") ?? 8288),
  signingKey: arg("signing-key"),
  eventKey: arg("event-key"),
  mode: engineModeFromEnv(arg("mode")),
  journalDir: arg("journal-dir"), // also INNGEST_ENGINE_JOURNAL_DIR
  log: (line) => console.log(`[engine] ${line}`),
  // Another engine took the database (this one lost its lock): it has stopped; exit non-zero so a supervisor sees it.
  onFatal: (err) => {
    flushTrace();
    console.error(`[engine] exiting: ${err.message}`);
    process.exit(1);
  },
});
console.log(JSON.stringify({ ready: true, url: engine.url, port: engine.port }));
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.once(sig, () =>
    void engine.stop().finally(() => {
      flushTrace(); // INNGEST_ENGINE_TRACE (bench:engine with BENCH_TRACE=1); a no-op otherwise
      process.exit(0);
    }),
  );
}
