// The POST /api/tasks schema at its edges: a deadline zod's ISO check accepts but Postgres cannot store (year 0000,
// or an offset that pushes 9999-12-31 into year 10000) must be the caller's 400, not a 500 from submit_task.
import { describe, expect, test } from "vitest";
import { CreateTaskBody } from "../../lib/tasks/schema";

const parse = (deadline: unknown) => CreateTaskBody.safeParse({ agent: "research", prompt: "p", deadline });

describe("CreateTaskBody.deadline", () => {
  test.each(["0000-01-01T00:00:00Z", "9999-12-31T23:59:59-23:59", "1969-12-31T23:59:59Z", "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z"])(
    "%s -> refused, naming deadline",
    (d) => {
      const r = parse(d);
      expect(r.success).toBe(false);
      expect(r.error!.issues[0]!.path).toEqual(["deadline"]);
    },
  );

  test.each(["2026-11-30T07:00:00Z", "2026-11-30T07:00:00.123456+01:00", "9999-12-31T23:59:59Z", "1970-01-01T00:00:00Z"])("%s -> accepted", (d) => {
    expect(parse(d).success).toBe(true);
  });
});

describe("CreateTaskBody.callback_url", () => {
  const parseUrl = (callback_url: string) => CreateTaskBody.safeParse({ agent: "research", prompt: "p", callback_url });
  test.each(["http://user:pass@example.com/hook", "https://token@example.com/hook", "https://:pw@example.com/"])("%s (credentials) -> refused", (u) => {
    const r = parseUrl(u);
    expect(r.success).toBe(false);
    expect(r.error!.issues[0]!.path).toEqual(["callback_url"]);
  });
  test("https://example.com/hook?x=1 -> accepted", () => {
    expect(parseUrl("https://example.com/hook?x=1").success).toBe(true);
  });
});
