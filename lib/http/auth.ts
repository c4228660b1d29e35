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

/**
 * For a route that verifies the key later, together with its work (POST /api/tasks: submit_task checks the key in
 * the call that records the task): runs the request's own checks (headers, body, schema) and, if they refuse it,
 * verifies the key first. A wrong, revoked or deleted key is then a 401 whatever else is wrong with the request —
 * an unauthenticated caller learns nothing about the API from its validation — while a valid request still costs
 * one database call.
 */
export async function checkedWithKey<T>(req: Request, checks: () => T | Promise<T>): Promise<T> {
  try {
    return await checks();
  } catch (err) {
    if (err instanceof ApiError && err.status !== 401) await requireApiKey(req);
    throw err;
  }
}
