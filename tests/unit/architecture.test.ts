// The arrows go app -> inngest -> lib -> supabase (DESIGN.md, principle 7): lib/ records events in the outbox and
// never imports inngest/. This fails on any import of inngest/ from lib/, by alias or by relative path.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { expect, test } from "vitest";

const root = fileURLToPath(new URL("../..", import.meta.url));

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? files(p) : /\.(ts|tsx|js|mjs)$/.test(name) ? [p] : [];
  });
}

const SPECIFIER = /(?:from\s+|import\s*\(\s*|require\s*\(\s*|import\s+)["']([^"']+)["']/g;

function importsOfInngest(file: string): string[] {
  const found: string[] = [];
  for (const m of readFileSync(file, "utf8").matchAll(SPECIFIER)) {
    const spec = m[1]!;
    const target = spec.startsWith("@/") ? join(root, spec.slice(2)) : spec.startsWith(".") ? resolve(file, "..", spec) : null;
    if (target && relative(root, target).split(/[\\/]/)[0] === "inngest") found.push(`${relative(root, file)}: ${spec}`);
  }
  return found;
}

test("no module in lib/ imports inngest/", () => {
  const libFiles = files(join(root, "lib"));
  expect(libFiles.length).toBeGreaterThan(20);
  expect(libFiles.flatMap(importsOfInngest)).toEqual([]);
});

test("the check sees an import when there is one", () => {
  // inngest/ itself imports inngest/ modules: the same scan must find them, or the test above proves nothing.
  expect(files(join(root, "inngest")).flatMap(importsOfInngest).length).toBeGreaterThan(0);
});
