// A second (and third) process for the pacing test: takes from a model's rate-limit bucket N times at once through
// its own supabase-js client, and prints what it was admitted as one JSON line. With an `actual` output count, each
// admitted call is settled with it right away (taken at `output`, the expectation; corrected by the real usage).
import { createAdminClient } from "../../../lib/db/admin";
import { readRateLimitHeaders, settleRateLimit, takeRateLimit } from "../../../lib/pacing";

const [url, key, model, count, now, tag, input, output, actual] = process.argv.slice(2);
const db = createAdminClient({ url: url!, secretKey: key! });
const results = await Promise.all(
  Array.from({ length: Number(count) }, async (_, i) => {
    const r = await takeRateLimit(db, { model: model!, ticket: `${tag}-${i}`, priority: 0, inputTokens: Number(input), outputTokens: Number(output), now: new Date(now!) });
    if (r.ok && actual !== undefined) {
      await settleRateLimit(db, { model: model!, ticket: `${tag}-${i}`, refundInput: 0, refundOutput: r.outputTaken - Number(actual), headers: readRateLimitHeaders(null), now: new Date(now!) });
    }
    return r;
  }),
);
process.stdout.write(
  JSON.stringify({
    admitted: results.filter((r) => r.ok).length,
    input: results.reduce((s, r) => s + r.inputTaken, 0),
    output: results.reduce((s, r) => s + r.outputTaken, 0),
    waits: results.filter((r) => !r.ok).map((r) => r.waitUntil),
  }) + "\n",
);
process.exit(0);
