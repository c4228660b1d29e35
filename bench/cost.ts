// npm run bench:cost — what prompt caching saves on a 10-turn research task.
// The research agent (its seeded definition: model, system prompt, tools) works through 9 web_fetch turns that
// each bring back a ~2,000-token page, then answers. The same conversation is sent twice to the offline Claude
// double, whose usage accounting follows the real API's (cache writes, reads, minimum cacheable prefix, TTL):
// once as Nightshift builds requests (breakpoints on tools + system and on the newest message), once with no
// cache_control at all. Costs come from lib/llm/prices.ts.
import Anthropic from "@anthropic-ai/sdk";
import { startClaudeDouble, scenarioMarker } from "../local/claude/server";
import type { AgentConfig } from "../lib/agents/catalog";
import { buildRequest, type Message } from "../lib/agents/request";
import { priceFor } from "../lib/llm/prices";

const TURNS = 10;
const agent: AgentConfig = {
  id: "research",
  model: "claude-sonnet-4-6",
  system_prompt:
    "You are Nightshift's research agent. Work carefully, cite sources, and finish with a concise summary of findings.",
  max_turns: TURNS,
  max_tokens: 2048,
  wall_clock_seconds: 1800,
  tools: ["web_fetch", "save_artifact"],
  requires_approval: false,
  approval_timeout_seconds: 86_400,
  approval_auto_action: "reject",
};

// A page of plausible research text (~8,000 characters ≈ 2,000 tokens), different for every turn.
function page(turn: number): string {
  const sentences = [
    "Durable execution engines persist each step's result so that a retried function skips finished work.",
    "Queues decouple producers from workers, which lets overnight jobs absorb bursts without dropping requests.",
    "Budget caps per agent keep a runaway loop from spending more than its owner planned for the day.",
    "Human approval gates belong where a decision is expensive to undo, such as publishing or sending email.",
    "Batch APIs trade latency for price, which suits work nobody is waiting for until the morning.",
  ];
  let text = `Source ${turn}: notes from https://example.org/article-${turn}\n`;
  for (let i = 0; text.length < 8000; i++) text += `${sentences[(i + turn) % sentences.length]} (${turn}.${i}) `;
  return text;
}

interface TurnCost {
  input: number;
  cacheWrite: number;
  cacheRead: number;
  micros: number;
}

async function runConversation(client: Anthropic, double: Awaited<ReturnType<typeof startClaudeDouble>>, caching: boolean) {
  const scenario = `bench-cost-${caching ? "cached" : "uncached"}`;
  double.script(scenario, [
    ...Array.from({ length: TURNS - 1 }, (_, i) => ({ tool_use: { name: "web_fetch", input: { url: `https://example.org/article-${i + 1}` } } })),
    { text: "Summary: durable steps, budgets and approvals make overnight agents safe." },
  ]);
  const messages: Message[] = [
    { role: "user", content: `${scenarioMarker(scenario)} Research how teams run AI agents overnight; read sources and summarize.` },
  ];
  const p = priceFor(agent.model);
  const costs: TurnCost[] = [];
  for (let turn = 1; turn <= TURNS; turn++) {
    const msg = await client.messages.create(buildRequest(agent, messages, { serverWebSearch: false, promptCaching: caching }));
    const u = msg.usage;
    const cw = u.cache_creation_input_tokens ?? 0;
    const cr = u.cache_read_input_tokens ?? 0;
    costs.push({
      input: u.input_tokens,
      cacheWrite: cw,
      cacheRead: cr,
      micros: (u.input_tokens * p.input + cw * p.cacheWrite + cr * p.cacheRead) / 1_000_000,
    });
    messages.push({ role: "assistant", content: msg.content as Anthropic.ContentBlockParam[] });
    const calls = msg.content.filter((b): b is Anthropic.ToolUseBlock => b.type === "tool_use");
    if (!calls.length) break;
    messages.push({
      role: "user",
      content: calls.map((c) => ({ type: "tool_result" as const, tool_use_id: c.id, content: page(turn) })),
    });
  }
  return costs;
}

async function main() {
  const double = await startClaudeDouble();
  const client = new Anthropic({ apiKey: "bench", baseURL: double.url, maxRetries: 0 });
  try {
    const cached = await runConversation(client, double, true);
    const uncached = await runConversation(client, double, false);
    const usd = (m: number) => `$${(m / 1_000_000).toFixed(4)}`;
    console.log(`bench:cost — ${agent.model}, ${TURNS} turns, ~2,000-token tool result per turn (offline double's accounting)\n`);
    console.log("turn | uncached input | cached: input / cache write / cache read | input cost uncached | cached");
    for (let i = 0; i < cached.length; i++) {
      const c = cached[i]!;
      const u = uncached[i]!;
      console.log(
        `${String(i + 1).padStart(4)} | ${String(u.input).padStart(14)} | ${`${c.input} / ${c.cacheWrite} / ${c.cacheRead}`.padStart(40)} | ${usd(u.micros).padStart(19)} | ${usd(c.micros)}`,
      );
    }
    const sum = (xs: TurnCost[]) => xs.slice(1).reduce((a, x) => a + x.micros, 0);
    const before = sum(uncached);
    const after = sum(cached);
    console.log(`\ninput cost of turns 2–${cached.length}: uncached ${usd(before)}, cached ${usd(after)}`);
    console.log(`reduction: ${((1 - after / before) * 100).toFixed(1)}% (goal ≥ 60%)`);
    const all = (xs: TurnCost[]) => xs.reduce((a, x) => a + x.micros, 0);
    console.log(`whole task input cost: uncached ${usd(all(uncached))}, cached ${usd(all(cached))}`);
  } finally {
    await double.stop();
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
