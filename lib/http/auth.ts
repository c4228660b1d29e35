// Bearer API-key authentication for the HTTP API.
import { verifyApiKey } from "@/lib/api-keys";
import { db } from "@/lib/db/server";
import { ApiError } from "./errors";

const CHALLENGE = { "WWW-Authenticate": 'Bearer realm="nightshift"' };

export async function requireApiKey(req: Request): Promise<{ apiKeyId: string }> {
  const header = req.headers.get("authorization") ?? "";
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!m) {
    throw new ApiError(401, "unauthorized", "Missing API key: send Authorization: Bearer <key>", undefined, CHALLENGE);
  }
  const apiKeyId = await verifyApiKey(db(), m[1]!);
  if (!apiKeyId) throw new ApiError(401, "unauthorized", "Invalid or revoked API key", undefined, CHALLENGE);
  return { apiKeyId };
}
