// save_artifact on the real database: stored once per tool call (sequential and concurrent repeats), size and
// SHA-256 computed by the database, readable errors for malformed input.
import { createHash, randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { runToolCall, type ToolContext } from "../../../lib/agents/tools";
import { loadToolConfig } from "../../../lib/agents/tools/config";
import { getArtifact, listArtifacts, saveArtifact } from "../../../lib/artifacts";
import { SideEffectInProgressError } from "../../../lib/side-effects";
import { createTestSupabase, type TestSupabase } from "../../support/supabase";
import { sql } from "../db/sql";

let sb: TestSupabase;
let taskId: string;

beforeAll(async () => {
  sb = await createTestSupabase();
  const { data, error } = await sb.admin.from("tasks").insert({ agent_id: "research", prompt: "artifact test" }).select("id").single();
  expect(error).toBeNull();
  taskId = data!.id;
});
afterAll(async () => {
  await sb?.stop();
});

function ctx(toolUseId: string, maxBytes?: number): ToolContext {
  return { db: sb.admin, taskId, toolUseId, config: loadToolConfig({}, maxBytes ? { artifacts: { maxBytes } } : {}) };
}

const count = async (toolUseId: string) =>
  Number(
    (await sql<{ n: string }>(sb.databaseUrl, "select count(*)::text as n from public.artifacts where tool_use_id = $1", [toolUseId]))[0]!.n,
  );

describe("save_artifact", () => {
  test("stores the content and returns a small result; the database computes size and SHA-256", async () => {
    const toolUseId = `toolu_${randomUUID()}`;
    const content = `# Report\n\n${"Ünïcödé line\n".repeat(20_000)}`; // ~280 KB, multi-byte characters
    const res = await runToolCall("save_artifact", { name: "report.md", content }, ctx(toolUseId));
    expect(res.is_error).toBeUndefined();
    expect(res.content.length).toBeLessThan(200);
    const out = JSON.parse(res.content) as { artifact_id: string; name: string; bytes: number };
    expect(out).toEqual({ artifact_id: expect.any(String), name: "report.md", bytes: Buffer.byteLength(content) });

    const stored = await getArtifact(sb.admin, out.artifact_id);
    expect(stored).toMatchObject({
      task_id: taskId,
      tool_use_id: toolUseId,
      name: "report.md",
      content_type: "text/markdown",
      bytes: Buffer.byteLength(content),
      sha256: createHash("sha256").update(content).digest("hex"),
    });
    expect(stored!.content).toBe(content);
    expect((await listArtifacts(sb.admin, taskId)).map((a) => a.id)).toContain(out.artifact_id);
  });

  test("a retried step returns the same artifact and stores nothing new", async () => {
    const toolUseId = `toolu_${randomUUID()}`;
    const input = { name: "data.json", content: '{"rows":[1,2,3]}', content_type: "application/json" };
    const first = await runToolCall("save_artifact", input, ctx(toolUseId));
    const second = await runToolCall("save_artifact", input, ctx(toolUseId));
    expect(second).toEqual({ ...first, replayed: true });
    expect(await count(toolUseId)).toBe(1);
  });

  test("concurrent duplicates store one artifact", async () => {
    const toolUseId = `toolu_${randomUUID()}`;
    const outcomes = await Promise.allSettled(
      Array.from({ length: 10 }, () => runToolCall("save_artifact", { name: "c.md", content: "concurrent" }, ctx(toolUseId))),
    );
    const contents = new Set<string>();
    for (const o of outcomes) {
      if (o.status === "fulfilled") contents.add(o.value.content);
      else expect(o.reason).toBeInstanceOf(SideEffectInProgressError);
    }
    expect(contents.size).toBe(1);
    expect(await count(toolUseId)).toBe(1);
  });

  test("the table itself stores at most one artifact per tool call, even past the ledger", async () => {
    const toolUseId = `toolu_${randomUUID()}`;
    const args = { taskId, toolUseId, name: "direct.md", contentType: "text/markdown" as const, content: "direct" };
    const [a, b] = await Promise.all([saveArtifact(sb.admin, args), saveArtifact(sb.admin, args)]);
    expect(a.artifact_id).toBe(b.artifact_id);
    expect([a.created, b.created].sort()).toEqual([false, true]);
    expect(await count(toolUseId)).toBe(1);
  });

  test("a different tool call stores a second artifact", async () => {
    const a = await runToolCall("save_artifact", { name: "same.md", content: "same" }, ctx(`toolu_${randomUUID()}`));
    const b = await runToolCall("save_artifact", { name: "same.md", content: "same" }, ctx(`toolu_${randomUUID()}`));
    expect(JSON.parse(a.content).artifact_id).not.toBe(JSON.parse(b.content).artifact_id);
  });

  test.each([
    [{ content: "x" }, /name: /],
    [{ name: "x.md" }, /content: /],
    [{ name: "x.md", content: 42 }, /content: .*expected string/i],
    [{ name: "x.md", content: "x", content_type: "image/png" }, /content_type: /],
    [{ name: "", content: "x" }, /name: /],
    [null, /expected object/i],
  ])("malformed input is a readable is_error result and stores nothing (%#)", async (input, message) => {
    const toolUseId = `toolu_${randomUUID()}`;
    const res = await runToolCall("save_artifact", input, ctx(toolUseId));
    expect(res).toMatchObject({ type: "tool_result", tool_use_id: toolUseId, is_error: true });
    expect(res.content).toMatch(/^Invalid input for save_artifact: /);
    expect(res.content).toMatch(message);
    expect(await count(toolUseId)).toBe(0);
  });

  test("invalid JSON, NUL characters and oversize content are refused readably, and the refusal is recorded", async () => {
    const toolUseId = `toolu_${randomUUID()}`;
    const bad = await runToolCall("save_artifact", { name: "d.json", content: "{nope", content_type: "application/json" }, ctx(toolUseId));
    expect(bad.is_error).toBe(true);
    expect(bad.content).toMatch(/not valid JSON/);
    expect(await count(toolUseId)).toBe(0);
    expect(await runToolCall("save_artifact", { name: "d.json", content: "{nope", content_type: "application/json" }, ctx(toolUseId))).toEqual({
      ...bad,
      replayed: true,
    });

    const nul = await runToolCall("save_artifact", { name: "n.txt", content: "a\u0000b" }, ctx(`toolu_${randomUUID()}`));
    expect(nul).toMatchObject({ is_error: true, content: expect.stringMatching(/NUL/) });

    const big = await runToolCall("save_artifact", { name: "big.txt", content: "x".repeat(2000) }, ctx(`toolu_${randomUUID()}`, 1000));
    expect(big).toMatchObject({ is_error: true, content: "content is 2000 bytes; artifacts are limited to 1000 bytes" });
  });
});
