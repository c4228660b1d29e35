// Agents are data: their model, prompt, tools, limits and budget live in the `agents` table, so an operator
// changes them without a deploy. This reads one definition for a run.
import type { AdminClient } from "@/lib/db/admin";
import { isToolName, type ToolName } from "./tools";

export interface AgentConfig {
  id: string;
  model: string;
  system_prompt: string;
  max_turns: number;
  max_tokens: number;
  wall_clock_seconds: number;
  tools: ToolName[];
  requires_approval: boolean;
  approval_timeout_seconds: number;
  approval_auto_action: "reject" | "approve";
}

export const AGENT_COLUMNS =
  "id,model,system_prompt,max_turns,max_tokens,wall_clock_seconds,tools,requires_approval,approval_timeout_seconds,approval_auto_action";

export function toAgentConfig(row: Record<string, unknown>): AgentConfig {
  const tools = (row.tools as string[] | null) ?? [];
  const unknown = tools.filter((t) => !isToolName(t));
  if (unknown.length) throw new Error(`agent ${String(row.id)} lists unknown tools: ${unknown.join(", ")}`);
  return {
    id: String(row.id),
    model: String(row.model),
    system_prompt: String(row.system_prompt),
    max_turns: Number(row.max_turns),
    max_tokens: Number(row.max_tokens),
    wall_clock_seconds: Number(row.wall_clock_seconds),
    tools: tools as ToolName[],
    requires_approval: row.requires_approval === true,
    approval_timeout_seconds: Number(row.approval_timeout_seconds),
    approval_auto_action: row.approval_auto_action === "approve" ? "approve" : "reject",
  };
}

export async function loadAgent(db: AdminClient, id: string): Promise<AgentConfig> {
  const { data, error } = await db.from("agents").select(AGENT_COLUMNS).eq("id", id).single();
  if (error) throw new Error(`agent ${id} could not be read: ${error.message}`);
  return toAgentConfig(data as Record<string, unknown>);
}
