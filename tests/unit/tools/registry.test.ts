// The registry and runToolCall's contract, without a database: schemas derived from zod, readable errors for bad
// calls, and a side-effecting tool never reaching the ledger with input it rejected.
import { describe, expect, test } from "vitest";
import { z } from "zod";
import type { AdminClient } from "../../../lib/db/admin";
import {
  describeIssues,
  getTool,
  loadToolConfig,
  runToolCall,
  TOOL_NAMES,
  toolDefinitions,
  tools,
} from "../../../lib/agents/tools";
import { defineTool, toInputSchema } from "../../../lib/agents/tools/types";

const untouchableDb = new Proxy({}, {
  get(_t, prop) {
    throw new Error(`the database was used (${String(prop)})`);
  },
}) as AdminClient;

const ctx = (toolUseId = "toolu_unit") => ({
  db: untouchableDb,
  taskId: "00000000-0000-4000-8000-000000000001",
  toolUseId,
  config: loadToolConfig({}),
});

describe("the registry", () => {
  test("has the three tools, each a valid Claude tool definition", () => {
    expect(TOOL_NAMES).toEqual(["web_fetch", "save_artifact", "send_email"]);
    for (const name of TOOL_NAMES) {
      const tool = tools[name];
      expect(tool.name).toBe(name);
      expect(tool.description.length).toBeGreaterThan(40);
      expect(tool.input_schema.type).toBe("object");
      expect(tool.input_schema).not.toHaveProperty("$schema");
    }
    expect(tools.web_fetch.sideEffect).toBe(false);
    expect(tools.save_artifact.sideEffect).toBe(true);
    expect(tools.send_email.sideEffect).toBe(true);
  });

  test("input_schema is derived from the zod schema, so the two cannot drift", () => {
    for (const name of TOOL_NAMES) {
      const { $schema: _s, ...expected } = z.toJSONSchema(tools[name].input, { io: "input" }) as Record<string, unknown>;
      expect(tools[name].input_schema).toEqual(expected);
    }
    expect(tools.web_fetch.input_schema).toMatchObject({ required: ["url"], properties: { url: { type: "string" } } });
    expect(tools.send_email.input_schema).toMatchObject({
      required: ["to", "subject", "text"],
      properties: { to: { type: "array", maxItems: 10, items: { format: "email" } } },
    });
    // A field with a default is optional for the model.
    expect(tools.save_artifact.input_schema.required).toEqual(["name", "content"]);
  });

  test("toolDefinitions returns name, description and schema in the order asked; an unknown name throws", () => {
    const defs = toolDefinitions(["send_email", "web_fetch"]);
    expect(defs.map((d) => d.name)).toEqual(["send_email", "web_fetch"]);
    expect(Object.keys(defs[0]!)).toEqual(["name", "description", "input_schema"]);
    expect(() => toolDefinitions(["rm_rf"])).toThrow(/unknown tool rm_rf/);
    expect(getTool("toString")).toBeUndefined();
  });

  test("defineTool refuses a non-object schema and an invalid name", () => {
    expect(() => toInputSchema(z.string())).toThrow(/zod object/);
    expect(() =>
      defineTool({ name: "bad name", description: "x", input: z.object({}), sideEffect: false, run: async () => null }),
    ).toThrow(/not a valid Claude tool name/);
  });
});

describe("runToolCall", () => {
  test("an unknown tool is an is_error result naming the tools there are", async () => {
    const res = await runToolCall("delete_everything", {}, ctx());
    expect(res).toEqual({
      type: "tool_result",
      tool_use_id: "toolu_unit",
      is_error: true,
      content: 'Unknown tool "delete_everything". Available tools: web_fetch, save_artifact, send_email.',
    });
  });

  test.each([
    ["send_email", { to: "ada@example.com", subject: "s", text: "t" }, /to: .*expected array/i],
    ["send_email", { to: ["ada@"], subject: "s", text: "t" }, /to\.0: Invalid email address/],
    ["save_artifact", { name: 7, content: "x" }, /name: .*expected string/i],
    ["save_artifact", "just a string", /expected object/i],
    ["web_fetch", { url: ["https://example.com"] }, /url: .*expected string/i],
  ])("%s with malformed input → readable is_error naming the field; the ledger is never touched", async (name, input, message) => {
    const res = await runToolCall(name, input, ctx());
    expect(res.is_error).toBe(true);
    expect(res.content).toMatch(new RegExp(`^Invalid input for ${name}: `));
    expect(res.content).toMatch(message);
  });

  test("describeIssues lists every problem with its path", () => {
    const r = z.object({ a: z.string(), b: z.array(z.number()) }).safeParse({ b: [1, "x"] });
    expect(describeIssues(r.error!)).toMatch(/^a: .*; b\.1: /);
  });
});

describe("loadToolConfig", () => {
  test("defaults", () => {
    const c = loadToolConfig({});
    expect(c.webFetch).toMatchObject({ allow: [], maxBytes: 2 * 1024 * 1024, timeoutMs: 15_000, maxChars: 20_000, maxRedirects: 5 });
    expect(c.email).toMatchObject({ apiKey: undefined, baseUrl: "https://api.resend.com", maxRecipients: 10 });
    expect(c.artifacts.maxBytes).toBe(5 * 1024 * 1024);
    expect(c.sideEffects.leaseSeconds).toBe(120);
  });

  test("reads the variables; an invalid one is a readable error", () => {
    const c = loadToolConfig({
      NIGHTSHIFT_FETCH_ALLOW: " intranet.example, 10.0.0.0/8 ,",
      RESEND_BASE_URL: "http://127.0.0.1:9999/",
      RESEND_API_KEY: " re_x ",
      NIGHTSHIFT_FETCH_TIMEOUT_MS: "5000",
    });
    expect(c.webFetch.allow).toEqual(["intranet.example", "10.0.0.0/8"]);
    expect(c.webFetch.timeoutMs).toBe(5000);
    expect(c.email).toMatchObject({ baseUrl: "http://127.0.0.1:9999", apiKey: "re_x" });
    expect(() => loadToolConfig({ RESEND_BASE_URL: "not a url" })).toThrow(/RESEND_BASE_URL/);
    expect(() => loadToolConfig({ NIGHTSHIFT_FETCH_MAX_BYTES: "12" })).toThrow(/NIGHTSHIFT_FETCH_MAX_BYTES/);
  });
});
