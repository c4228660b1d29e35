// `.env.example` is copied as it is: every variable it leaves empty must mean "use the default", never an error.
import { readFileSync } from "node:fs";
import { afterEach, expect, test } from "vitest";
import { env, resetEnvCache } from "@/lib/env";

const saved = { ...process.env };
afterEach(() => {
  process.env = { ...saved };
  resetEnvCache();
});

test("the configuration in .env.example, empty values and all, is valid", () => {
  const lines = readFileSync(new URL("../../.env.example", import.meta.url), "utf8").split("\n");
  const vars = lines.map((l) => /^([A-Z0-9_]+)=(.*)$/.exec(l.trim())).filter((m): m is RegExpExecArray => !!m);
  expect(vars.length).toBeGreaterThan(10);
  for (const [, name, value] of vars) process.env[name!] = value!;
  // What a deployment must always set: the database, and Claude (or the offline double).
  process.env["SUPABASE_URL"] ||= "http://127.0.0.1:54321";
  process.env["SUPABASE_SECRET_KEY"] ||= "x".repeat(40);
  process.env["ANTHROPIC_BASE_URL"] ||= "http://127.0.0.1:4100";
  resetEnvCache();
  const e = env();
  expect(e.NIGHTSHIFT_MODEL_TIMEOUT_MS).toBe(120_000);
  expect(e.NIGHTSHIFT_BREAKER_THRESHOLD).toBe(5);
});
