// CEL for trigger `expression`s, `waitForEvent` / `cancelOn` `if`s and concurrency keys, as Inngest does.
// Expressions are parsed once and cached; evaluation errors (a missing key, a type mismatch) mean "no match",
// which is how Inngest treats them.
import { parse } from "@marcbachmann/cel-js";

type Compiled = ReturnType<typeof parse>;
const cache = new Map<string, Compiled>();

function compile(expr: string): Compiled {
  let c = cache.get(expr);
  if (!c) {
    c = parse(expr);
    if (cache.size > 5_000) cache.clear();
    cache.set(expr, c);
  }
  return c;
}

/** Throws a readable error when `expr` is not valid CEL (used at sync, so a typo fails loudly). */
export function checkExpression(expr: string): void {
  compile(expr);
}

/** Evaluates `expr` to a boolean; anything but `true` (including an error) is false. */
export function matches(expr: string, vars: Record<string, unknown>): boolean {
  try {
    return compile(expr)(vars) === true;
  } catch {
    return false;
  }
}

/** Evaluates `expr` to a value (concurrency keys). Returns undefined on error. */
export function evaluate(expr: string, vars: Record<string, unknown>): unknown {
  try {
    const v = compile(expr)(vars);
    return typeof v === "bigint" ? Number(v) : v;
  } catch {
    return undefined;
  }
}
