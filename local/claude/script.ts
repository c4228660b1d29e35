// Scripted behaviour for the offline double, one queue per scenario.
//
// A request belongs to scenario S when its system prompt or messages contain the marker `[[scenario:S]]`
// (or it carries the header `x-double-scenario: S`). Each matching model request (a /v1/messages call or one
// request inside a batch) consumes the next step of S's queue; when the queue is empty, the double gives its
// default deterministic answer. count_tokens never consumes steps.
import { z } from "zod";

export const SCENARIO_MARKER = /\[\[scenario:([A-Za-z0-9_.:\/-]{1,200})\]\]/;
export const SCENARIO_HEADER = "x-double-scenario";

/** The marker to put in a prompt so that the double routes the request to scenario `name`. */
export function scenarioMarker(name: string): string {
  return `[[scenario:${name}]]`;
}

const toolCall = z.object({
  name: z.string().min(1),
  /** Omitted: the double synthesizes an input that satisfies the tool's input_schema. */
  input: z.record(z.string(), z.unknown()).optional(),
  id: z.string().regex(/^toolu_/).optional(),
});

const usageOverride = z
  .object({
    input_tokens: z.number().int().min(0),
    output_tokens: z.number().int().min(0),
    cache_creation_input_tokens: z.number().int().min(0),
    cache_read_input_tokens: z.number().int().min(0),
  })
  .partial();

export const stepSchema = z
  .strictObject({
    /** Reply with this text (still cut at max_tokens / stop_sequences like a real model). */
    text: z.string().optional(),
    /** Reply with one or several tool calls (after `text`, if given); stop_reason tool_use. */
    tool_use: z.union([toolCall, z.array(toolCall).min(1)]).optional(),
    /** Reply with a tool call to this tool whose input violates the tool's input_schema. */
    malformed_tool_input: z.string().min(1).optional(),
    /** Answer with an API error instead of a message. */
    error: z
      .object({
        status: z.number().int().min(400).max(599),
        /** Anthropic error type; derived from the status when omitted. */
        type: z.string().optional(),
        message: z.string().optional(),
        /** Sent as `retry-after` (seconds, fractions allowed: the SDK parses them). */
        retry_after_s: z.number().min(0).optional(),
        /** Sent as `retry-after-ms`, which the SDK prefers over `retry-after`. */
        retry_after_ms: z.number().min(0).optional(),
        /** Sent as `x-should-retry: true|false`, which overrides the SDK's status-based policy. */
        should_retry: z.boolean().optional(),
      })
      .optional(),
    /** Wait this long before answering (combinable with any other kind). */
    latency_ms: z.number().int().min(0).max(600_000).optional(),
    /** Replace these usage figures in the answer (e.g. realistic large counts for cost tests). */
    usage: usageOverride.optional(),
    /** Test hook: answer 200 with a message missing its `usage` (a corrupted answer the client must refuse). */
    corrupt_answer: z.boolean().optional(),
    /** Force the stop reason (e.g. "max_tokens" or "refusal"). */
    stop_reason: z
      .enum(["end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn", "refusal", "model_context_window_exceeded"])
      .optional(),
    /** Apply this step to the next n matching requests (default 1). */
    repeat: z.number().int().min(1).max(1_000_000).optional(),
  })
  .refine((s) => !(s.error && (s.text !== undefined || s.tool_use || s.malformed_tool_input || s.usage)), {
    message: "an error step cannot also carry text, tool_use, malformed_tool_input or usage",
  });

export type Step = z.infer<typeof stepSchema>;
export type ToolCallStep = z.infer<typeof toolCall>;

export const scriptBodySchema = z.strictObject({ scenario: z.string().min(1), steps: z.array(stepSchema).min(1) });

interface Queued {
  step: Step;
  remaining: number;
}

export class ScriptBook {
  private queues = new Map<string, Queued[]>();

  add(scenario: string, steps: Step[]): number {
    const parsed = steps.map((s) => stepSchema.parse(s));
    const q = this.queues.get(scenario) ?? [];
    for (const step of parsed) q.push({ step, remaining: step.repeat ?? 1 });
    this.queues.set(scenario, q);
    return this.pending(scenario);
  }

  /** Takes the next step for a scenario, or undefined when its queue is empty. */
  take(scenario: string | null): Step | undefined {
    if (scenario === null) return undefined;
    const q = this.queues.get(scenario);
    const head = q?.[0];
    if (!q || !head) return undefined;
    head.remaining--;
    if (head.remaining <= 0) q.shift();
    if (q.length === 0) this.queues.delete(scenario);
    return head.step;
  }

  /** Number of requests the scenario's queue will still answer. */
  pending(scenario: string): number {
    return (this.queues.get(scenario) ?? []).reduce((n, q) => n + q.remaining, 0);
  }

  list(scenario: string): Array<Step & { remaining: number }> {
    return (this.queues.get(scenario) ?? []).map((q) => ({ ...q.step, remaining: q.remaining }));
  }

  clear(scenario?: string): void {
    if (scenario === undefined) this.queues.clear();
    else this.queues.delete(scenario);
  }
}
