// Bounds on what a request may carry into the database and the agents, checked before any schema: a Postgres
// text or jsonb value cannot hold a NUL (\u0000), a lone UTF-16 surrogate cannot be encoded as UTF-8, and a
// value nested thousands of levels deep overflows the stack of every recursive walker downstream (zod,
// canonical JSON, the Anthropic request). Each one is a 400 naming the field instead of a 500.
//
// The walk is iterative (an explicit stack), so it cannot itself overflow on the values it exists to refuse.
import { ApiError } from "./errors";

/** Deepest nesting of objects/arrays in a request value (the body is level 1). */
export const MAX_JSON_DEPTH = 32;
/** Most object keys plus array elements in one request value. */
export const MAX_JSON_ENTRIES = 10_000;

export interface JsonProblem {
  field: string;
  message: string;
}

// A high surrogate not followed by a low one, or a low one not preceded by a high one.
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** Why a string cannot be stored (NUL, lone surrogate), or null when it can. */
export function unstorableText(s: string): string | null {
  if (s.includes("\u0000")) return "must not contain NUL (\\u0000) characters";
  if (LONE_SURROGATE.test(s)) return "must not contain unpaired UTF-16 surrogates (invalid Unicode)";
  return null;
}

/** The first problem with a parsed JSON value (or a query/form record), or null. */
export function findJsonProblem(value: unknown, limits = { depth: MAX_JSON_DEPTH, entries: MAX_JSON_ENTRIES }): JsonProblem | null {
  const stack: { v: unknown; path: string[]; depth: number }[] = [{ v: value, path: [], depth: 1 }];
  let entries = 0;
  while (stack.length) {
    const { v, path, depth } = stack.pop()!;
    if (typeof v === "string") {
      const why = unstorableText(v);
      if (why) return { field: fieldName(path), message: why };
      continue;
    }
    if (v === null || typeof v !== "object") continue;
    if (depth > limits.depth) {
      return { field: fieldName(path), message: `is nested too deeply (at most ${limits.depth} levels of objects and arrays)` };
    }
    const children: [string, unknown][] = Array.isArray(v) ? v.map((x, i) => [String(i), x]) : Object.entries(v);
    entries += children.length;
    if (entries > limits.entries) {
      return { field: fieldName(path), message: `has too many keys and elements (at most ${limits.entries} in one request)` };
    }
    for (const [k, child] of children) {
      if (!Array.isArray(v)) {
        const why = unstorableText(k);
        if (why) return { field: fieldName(path), message: `has a key that ${why}` };
      }
      stack.push({ v: child, path: [...path, k], depth: depth + 1 });
    }
  }
  return null;
}

/** Throws the 400 for the first problem in `value`. */
export function assertStorable(value: unknown, what = "request body"): void {
  const problem = findJsonProblem(value);
  if (!problem) return;
  throw new ApiError(400, "invalid_request", `Invalid ${what}: ${problem.field}: ${problem.message}`, [problem]);
}

function fieldName(path: string[]): string {
  if (path.length === 0) return "(root)";
  // A path thousands of levels deep is named by its start.
  const shown = path.length > 8 ? [...path.slice(0, 8), "…"] : path;
  return shown.map((p) => p.slice(0, 64)).join(".");
}
