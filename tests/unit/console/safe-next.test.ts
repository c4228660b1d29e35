// Where sign-in may send the browser (issue 11, finding 1). The off-site cases passed the previous regex check
// (`/.//host:port/x` and friends normalise to `//host…`, which a browser reads as another host).
import { describe, expect, test } from "vitest";
import { safeNext } from "../../../lib/console/operations";

/** Where a browser on https://app.example ends up after `Location: <next>`. */
const landing = (next: string) => new URL(next, "https://app.example/login").origin;

describe("safeNext", () => {
  test.each([
    "/.//evil.example:8080/x",
    "/./\\evil.example/x",
    "/..//evil.example/x",
    "/%2e//evil.example/x",
    "/%2E%2E//evil.example",
    "//evil.example",
    "/\\evil.example",
    "/\t/evil.example",
    "/\n/evil.example",
    "https://evil.example/",
    "http:evil.example",
    "javascript:alert(1)",
    "\\\\evil.example",
    " /x",
    "",
  ])("%j stays on the app's origin", (next) => {
    const safe = safeNext(next);
    expect(landing(safe)).toBe("https://app.example");
    expect(safe.startsWith("/") && !safe.startsWith("//")).toBe(true);
    // Normalised (as Next's redirect and any proxy may normalise it), it must still not be protocol-relative.
    expect(new URL(safe, "https://app.example/").pathname.startsWith("//")).toBe(false);
  });

  test.each([
    ["/", "/"],
    ["/tasks/123?tab=steps", "/tasks/123?tab=steps"],
    ["/review#top", "/review#top"],
    ["/a/../review", "/review"],
    ["/login", "/"],
    ["/login?next=/x", "/"],
  ])("%j -> %j", (next, expected) => {
    expect(safeNext(next)).toBe(expected);
  });

  test("non-strings and overlong values go home", () => {
    expect(safeNext(null)).toBe("/");
    expect(safeNext(`/${"a".repeat(600)}`)).toBe("/");
  });
});
