// Runs the offline Claude API double on its own: `tsx local/claude/main.ts --port 4010 [--host 127.0.0.1]
// [--batch-delay-ms 1000] [--rate-limits <json>] [--quiet]`. Point the SDK at it with ANTHROPIC_BASE_URL=<printed url>.
import { parseArgs } from "node:util";
import { rateLimitConfigSchema } from "./rate-limits";
import { startClaudeDouble } from "./server";

const { values } = parseArgs({
  options: {
    port: { type: "string" },
    host: { type: "string" },
    "batch-delay-ms": { type: "string" },
    quiet: { type: "boolean", default: false },
    // JSON, per model (or "*"): {"claude-sonnet-4-6":{"requests_per_minute":50,"input_tokens_per_minute":30000,"output_tokens_per_minute":8000}}
    "rate-limits": { type: "string" },
  },
});

const num = (name: string, v: string | undefined) => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) {
    console.error(`--${name} must be a non-negative integer, got ${v}`);
    process.exit(2);
  }
  return n;
};

const double = await startClaudeDouble({
  port: num("port", values.port),
  host: values.host,
  batchDelayMs: num("batch-delay-ms", values["batch-delay-ms"]),
  rateLimits: values["rate-limits"] ? rateLimitConfigSchema.parse(JSON.parse(values["rate-limits"])) : undefined,
  log: values.quiet ? undefined : (line) => console.log(line),
});
console.log(`offline Claude double listening on ${double.url} (ANTHROPIC_BASE_URL=${double.url}; control at ${double.url}/_double)`);

const shutdown = () => {
  void double.stop().then(() => process.exit(0));
};
process.on("SIGINT", shutdown);
process.on("SIGTERM", shutdown);
