// Turns a JSON payload into a task's prompt and input: `{{payload.a.b}}` placeholders in a prompt template and
// an input mapping `{ "<field>": "payload.a.b" }`. A path the payload does not have is reported by name, so the
// sender learns which field its payload lacks (422), instead of a task with a hole in its prompt.
import type { Json } from "@/lib/db/database.types";

export interface MappingProblem {
  field: string;
  message: string;
}

export class MappingError extends Error {
  constructor(readonly problems: MappingProblem[]) {
    super(problems.map((p) => `${p.field}: ${p.message}`).join("; "));
    this.name = "MappingError";
  }
}

const PLACEHOLDER = /\{\{\s*([A-Za-z_][\w-]*(?:\.[\w-]+)*)\s*\}\}/g;
const MAX_VALUE_CHARS = 20_000;

/** The value at a dotted path (`payload.items.0.title`), or undefined. Only own properties are followed. */
export function valueAt(root: Record<string, unknown>, path: string): unknown {
  let cur: unknown = root;
  for (const part of path.split(".")) {
    if (cur === null || typeof cur !== "object") return undefined;
    if (!Object.prototype.hasOwnProperty.call(cur, part)) return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}

/** Fills `{{path}}` placeholders from `scope`; strings go in as they are, anything else as JSON. */
export function renderTemplate(template: string, scope: Record<string, unknown>): string {
  const problems: MappingProblem[] = [];
  const out = template.replace(PLACEHOLDER, (_m, path: string) => {
    const v = valueAt(scope, path);
    if (v === undefined || v === null) {
      problems.push({ field: path, message: "missing from the payload (the prompt template quotes it)" });
      return "";
    }
    const text = typeof v === "string" ? v : JSON.stringify(v);
    if (text.length > MAX_VALUE_CHARS) problems.push({ field: path, message: `longer than ${MAX_VALUE_CHARS} characters` });
    return text;
  });
  if (problems.length) throw new MappingError(problems);
  return out;
}

/** Builds the task input from a mapping; an empty mapping passes the whole payload as the input. */
export function mapInput(mapping: Record<string, unknown>, scope: { payload: unknown } & Record<string, unknown>): Json {
  const entries = Object.entries(mapping);
  if (entries.length === 0) return scope.payload as Json;
  const problems: MappingProblem[] = [];
  const input: Record<string, Json> = {};
  for (const [field, path] of entries) {
    if (typeof path !== "string") {
      problems.push({ field, message: "the mapping names no payload path" });
      continue;
    }
    const v = valueAt(scope, path);
    if (v === undefined) problems.push({ field: path, message: `missing from the payload (input field '${field}' needs it)` });
    else input[field] = v as Json;
  }
  if (problems.length) throw new MappingError(problems);
  return input;
}
