// save_artifact: stores a large output (a report, a draft, a dataset) in Supabase and returns its id, so that step
// outputs and the conversation stay small. Side-effecting: a retried step returns the first artifact's id (the
// ledger, backed by the artifacts table's unique (task, tool call) key).
import { z } from "zod";
import { ARTIFACT_CONTENT_TYPES, saveArtifact } from "@/lib/artifacts";
import { defineTool, ToolError } from "./types";

export const SaveArtifactInput = z.object({
  name: z
    .string()
    .trim()
    .min(1)
    .max(200)
    .regex(/^[^\u0000-\u001f\u007f]+$/, "must not contain control characters")
    .describe("A short descriptive name, e.g. 'postgres-news-summary.md'."),
  content: z.string().min(1).describe("The full content to store."),
  content_type: z
    .enum(ARTIFACT_CONTENT_TYPES)
    .default("text/markdown")
    .describe("text/markdown (default), text/plain, or application/json (must then be valid JSON)."),
});

export const saveArtifactTool = defineTool({
  name: "save_artifact",
  description:
    "Save a large output (a report, a draft, structured data) as an artifact of this task and get its id back. " +
    "Use it for anything longer than a few paragraphs instead of repeating it in your reply; mention the " +
    "artifact id in your final answer.",
  input: SaveArtifactInput,
  sideEffect: true,
  auditRecord: (input) => ({ name: input.name, content_type: input.content_type, bytes: Buffer.byteLength(input.content) }),
  async run(input, ctx) {
    const bytes = Buffer.byteLength(input.content, "utf8");
    const max = ctx.config.artifacts.maxBytes;
    if (bytes > max) throw new ToolError(`content is ${bytes} bytes; artifacts are limited to ${max} bytes`);
    // Postgres text cannot hold NUL; refusing here beats a database error that a retry would only repeat.
    if (input.content.includes("\u0000")) throw new ToolError("content contains NUL characters; artifacts hold text only");
    if (input.content_type === "application/json") {
      try {
        JSON.parse(input.content);
      } catch (e) {
        throw new ToolError(`content_type is application/json but content is not valid JSON: ${(e as Error).message}`);
      }
    }
    const saved = await saveArtifact(ctx.db, {
      taskId: ctx.taskId,
      toolUseId: ctx.toolUseId,
      name: input.name,
      contentType: input.content_type,
      content: input.content,
    });
    return { artifact_id: saved.artifact_id, name: input.name, bytes: saved.bytes };
  },
});
