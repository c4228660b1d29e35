// The list cursor checked at the route, before any query: the same strict decoding as lib/db/keyset.ts.
import { decodeKeyset, parseKeyset } from "@/lib/db/keyset";

export function assertListCursor(cursor: string): void {
  decodeKeyset(cursor);
}

export function isListCursor(cursor: string): boolean {
  return parseKeyset(cursor) !== null;
}
