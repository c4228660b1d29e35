// API keys look like `ns_<key id>_<secret>`. Only SHA-256 of the whole key is stored; the key id finds the
// row, and the hashes are compared in constant time so a wrong key leaks nothing through timing.
import { hash, randomBytes, timingSafeEqual } from "node:crypto";
import type { AdminClient } from "@/lib/db/admin";

const KEY_RE = /^ns_([a-z0-9]{12})_([A-Za-z0-9_-]{43})$/;
const ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789";

export function hashApiKey(key: string): string {
  return hash("sha256", key, "hex"); // one-shot: no Hash object per request
}

function randomId(): string {
  const bytes = randomBytes(12);
  let id = "";
  for (const b of bytes) id += ID_ALPHABET[b % ID_ALPHABET.length];
  return id;
}

/** Creates a key and returns it in clear text: the only time it is ever visible. */
export async function createApiKey(db: AdminClient, name: string): Promise<{ id: string; key: string }> {
  const id = randomId();
  const key = `ns_${id}_${randomBytes(32).toString("base64url")}`;
  const { error } = await db.from("api_keys").insert({ id, name, key_hash: hashApiKey(key) });
  if (error) throw new Error(`could not create API key: ${error.message}`);
  return { id, key };
}

/** A key as presented: its id (the lookup handle) and the SHA-256 of the whole key. Null when malformed. */
export interface PresentedKey {
  id: string;
  hash: string;
}

export function parseApiKey(presented: string): PresentedKey | null {
  const m = KEY_RE.exec(presented);
  return m ? { id: m[1]!, hash: hashApiKey(presented) } : null;
}

// No process-local cache: a revoked or deleted key must stop working at once (issue 11), and POST /api/tasks
// verifies the key inside the same database call that records the task (submit_task), so it costs nothing extra.

/** Returns the key id when `presented` is a live key, or null. One database call. */
export async function verifyApiKey(db: AdminClient, presented: string): Promise<string | null> {
  const key = parseApiKey(presented);
  if (!key) return null;
  return verifyWithDatabase(db, key.id, key.hash);
}

async function verifyWithDatabase(db: AdminClient, id: string, presentedHash: string): Promise<string | null> {
  const { data, error } = await db.rpc("api_key_hash", { p_key_id: id });
  if (error) throw new Error(`API key lookup failed: ${error.message}`);
  // Compare even when the id is unknown, against a dummy, so both paths cost the same.
  const stored = Buffer.from(typeof data === "string" ? data : "0".repeat(64), "hex");
  const given = Buffer.from(presentedHash, "hex");
  const equal = timingSafeEqual(stored, given);
  return equal && typeof data === "string" ? id : null;
}
