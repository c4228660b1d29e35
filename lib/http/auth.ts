// Bearer API-key authentication for the HTTP API.
import { parseApiKey, verifyApiKey, type PresentedKey } from "@/lib/api-keys";
import { db } from "@/lib/db/server";
import { ApiError } from "./errors";

const CHALLENGE = { "WWW-Authenticate": 'Bearer realm="nightshift"' };

export function unauthorized(): ApiError {
  return new ApiError(401, "unauthorized", "Invalid or revoked API key", undefined, CHALLENGE);
}

/** The key the request presents, checked for shape only (no database call); 401 when missing or malformed. */
export function presentedApiKey(req: Request): PresentedKey {
  const header = req.headers.get("authorization") ?? "";
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!m) {
    throw new ApiError(401, "unauthorized", "Missing API key: send Authorization: Bearer <key>", undefined, CHALLENGE);
  }
  const key = parseApiKey(m[1]!);
  if (!key) throw unauthorized();
  return key;
}

/** Verifies the request's key against the database (one call; no cache, so a revocation applies at once). */
export async function requireApiKey(req: Request): Promise<{ apiKeyId: string }> {
  const header = req.headers.get("authorization") ?? "";
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!m) {
    throw new ApiError(401, "unauthorized", "Missing API key: send Authorization: Bearer <key>", undefined, CHALLENGE);
  }
  const apiKeyId = await verifyApiKey(db(), m[1]!);
  if (!apiKeyId) throw unauthorized();
  return { apiKeyId };
}
