// The list cursor is the only client-supplied value that reaches a PostgREST filter string: only the exact shape
// the API issues may decode, so nothing else can change the filter.
import { describe, expect, test } from "vitest";
import { encodeKeyset, olderThan, parseKeyset } from "@/lib/db/keyset";

const b64 = (v: unknown) => Buffer.from(typeof v === "string" ? v : JSON.stringify(v)).toString("base64url");
const TS = "2026-11-29T18:00:00.123456+00:00";
const ID = "0b7f2a58-7c1e-4f3a-9a57-3f1c2d4e5f60";

describe("keyset cursors", () => {
  test("a cursor the API issued round-trips into the filter", () => {
    const cursor = encodeKeyset(TS, ID);
    expect(parseKeyset(cursor)).toEqual({ c: TS, i: ID });
    expect(olderThan("created_at", cursor)).toBe(`created_at.lt."${TS}",and(created_at.eq."${TS}",id.lt.${ID})`);
  });

  test.each([
    ["a lenient date that Date.parse accepts", { c: "Nov 29 2026", i: ID }],
    ["a quote breaking out of the value", { c: `${TS}",id.gt.0`, i: ID }],
    ["a filter smuggled in the id", { c: TS, i: `${ID}),or(id.gt.0` }],
    ["an extra key", { c: TS, i: ID, x: 1 }],
    ["an impossible time", { c: "2026-13-40T25:61:61Z", i: ID }],
    ["a number for the timestamp", { c: 1, i: ID }],
    ["an array", [TS, ID]],
    ["upper-case hex", { c: TS, i: ID.toUpperCase() }],
  ])("refuses %s", (_what, value) => {
    const cursor = b64(value);
    expect(parseKeyset(cursor)).toBeNull();
    expect(() => olderThan("created_at", cursor)).toThrow(/cursor/);
  });

  test("refuses text that is not canonical base64url JSON", () => {
    for (const cursor of ["", "%%%", "not json", b64("null"), `${encodeKeyset(TS, ID)}=`, "a".repeat(300)]) {
      expect(parseKeyset(cursor)).toBeNull();
    }
  });
});
