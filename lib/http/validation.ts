// zod failures become a 400 that names each bad field.
import type { z } from "zod";
import { ApiError } from "./errors";
import { assertStorable } from "./json-limits";

export function parseOr400<S extends z.ZodType>(schema: S, value: unknown, what = "request body"): z.output<S> {
  // Query strings and headers too: a NUL or lone surrogate reaching Postgres would be a 500.
  assertStorable(value, what);
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const details = result.error.issues.map((i) => {
    const at = i.path.map(String).join(".");
    // An unexpected key is reported at its parent; name the key itself so the client sees what to remove.
    if (i.code === "unrecognized_keys") {
      return { field: i.keys.map((k) => (at ? `${at}.${k}` : k)).join(", "), message: `unknown field(s): ${i.keys.join(", ")}` };
    }
    return { field: at || "(root)", message: i.message };
  });
  const first = details[0]!;
  throw new ApiError(400, "invalid_request", `Invalid ${what}: ${first.field}: ${first.message}`, details);
}
