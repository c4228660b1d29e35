// The Anthropic client. With ANTHROPIC_API_KEY it talks to the real API; without one it talks to the
// offline double at ANTHROPIC_BASE_URL (started by `npm run dev` and by the tests). Same SDK either way.
import Anthropic from "@anthropic-ai/sdk";
import { env } from "@/lib/env";

let client: Anthropic | undefined;
let clientFor: string | undefined;

export function anthropic(): Anthropic {
  const e = env();
  const key = `${e.ANTHROPIC_API_KEY ?? ""}|${e.ANTHROPIC_BASE_URL ?? ""}`;
  if (!client || clientFor !== key) {
    client = new Anthropic({
      apiKey: e.ANTHROPIC_API_KEY ?? "offline-double",
      baseURL: e.ANTHROPIC_BASE_URL,
      // Retries belong to the durable step, not to the SDK: a retried step survives a crash, an SDK retry
      // loop does not, and the SDK would obey any retry-after without a bound.
      maxRetries: 0,
      timeout: e.NIGHTSHIFT_MODEL_TIMEOUT_MS,
    });
    clientFor = key;
  }
  return client;
}
