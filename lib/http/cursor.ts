// The list cursor checked at the route, before any query: the same strict decoding as lib/db/keyset.ts.
import { decodeKeyset } from "@/lib/db/keyset";

export function assertListCursor(cursor: string): void {
  decodeKeyset(cursor);
}
