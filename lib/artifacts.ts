// Artifacts: the large outputs of a task (reports, drafts, data) stored in Supabase, so that step outputs and tool
// results carry only an id. The database computes each artifact's size and SHA-256, and stores at most one artifact
// per (task, tool call).
import type { AdminClient } from "@/lib/db/admin";

export const ARTIFACT_CONTENT_TYPES = ["text/markdown", "text/plain", "application/json"] as const;
export type ArtifactContentType = (typeof ARTIFACT_CONTENT_TYPES)[number];

export interface SavedArtifact {
  artifact_id: string;
  bytes: number;
  sha256: string;
  /** False when this tool call had already stored its artifact and the first one was returned. */
  created: boolean;
}

export interface ArtifactSummary {
  id: string;
  task_id: string;
  tool_use_id: string | null;
  name: string;
  content_type: ArtifactContentType;
  bytes: number;
  sha256: string;
  created_at: string;
}

export interface Artifact extends ArtifactSummary {
  content: string;
}

const SUMMARY_COLUMNS = "id,task_id,tool_use_id,name,content_type,bytes,sha256,created_at";

/** Stores an artifact once per (taskId, toolUseId); with `toolUseId: null` every call stores a new one. */
export async function saveArtifact(
  db: AdminClient,
  a: { taskId: string; toolUseId: string | null; name: string; contentType: ArtifactContentType; content: string },
): Promise<SavedArtifact> {
  const { data, error } = await db.rpc("save_artifact", {
    p_task_id: a.taskId,
    p_tool_use_id: a.toolUseId,
    p_name: a.name,
    p_content_type: a.contentType,
    p_content: a.content,
  } as never);
  if (error) throw new Error(`save_artifact failed: ${error.message}`);
  const row = (data as SavedArtifact[] | null)?.[0];
  if (!row?.artifact_id) throw new Error("save_artifact returned no artifact");
  return row;
}

export async function getArtifact(db: AdminClient, id: string): Promise<Artifact | null> {
  const { data, error } = await db.from("artifacts").select(`${SUMMARY_COLUMNS},content`).eq("id", id).maybeSingle();
  if (error) throw new Error(`artifact read failed: ${error.message}`);
  return data as Artifact | null;
}

/** A task's artifacts without their content, oldest first. */
export async function listArtifacts(db: AdminClient, taskId: string): Promise<ArtifactSummary[]> {
  const { data, error } = await db
    .from("artifacts")
    .select(SUMMARY_COLUMNS)
    .eq("task_id", taskId)
    .order("created_at", { ascending: true })
    .order("id", { ascending: true });
  if (error) throw new Error(`artifact list failed: ${error.message}`);
  return (data ?? []) as ArtifactSummary[];
}
