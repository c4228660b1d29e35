// The local stand-ins for a Supabase project's API keys: HS256 JWTs signed with the PostgREST secret, carrying
// the role PostgREST switches to (`anon`, or `service_role`, which bypasses RLS). node:crypto only.
import { createHmac, randomBytes } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";

export const JWT_ISSUER = "nightshift-local";
// Fixed claims, so the same secret always yields the same key strings: a restarted dev stack keeps its keys.
const ISSUED_AT = 1735689600; // 2025-01-01T00:00:00Z
const EXPIRES_AT = 2051222400; // 2035-01-01T00:00:00Z
const SECRET_FILE = "jwt-secret";

export interface ApiKeys {
  /** Publishable: the browser-safe key; RLS applies. */
  anonKey: string;
  /** The server-only key (`service_role`): bypasses RLS. */
  secretKey: string;
}

const b64url = (data: string | Buffer) => Buffer.from(data).toString("base64url");

export function signJwt(payload: Record<string, unknown>, secret: string): string {
  const head = b64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const body = b64url(JSON.stringify(payload));
  const sig = createHmac("sha256", secret).update(`${head}.${body}`).digest("base64url");
  return `${head}.${body}.${sig}`;
}

export function mintApiKeys(jwtSecret: string): ApiKeys {
  const claims = { iss: JWT_ISSUER, iat: ISSUED_AT, exp: EXPIRES_AT };
  return {
    anonKey: signJwt({ ...claims, role: "anon" }, jwtSecret),
    secretKey: signJwt({ ...claims, role: "service_role" }, jwtSecret),
  };
}

/** A fresh secret: 32 random bytes as 64 hex characters (PostgREST wants at least 32 characters). */
export function generateJwtSecret(): string {
  return randomBytes(32).toString("hex");
}

/** The dev stack's secret, created once in `dataDir` (mode 0600) and reused, so keys survive restarts. */
export async function loadOrCreateJwtSecret(dataDir: string): Promise<string> {
  const file = join(dataDir, SECRET_FILE);
  const existing = await readFile(file, "utf8").then(
    (s) => s.trim(),
    (e: NodeJS.ErrnoException) => {
      if (e.code === "ENOENT") return null;
      throw e;
    },
  );
  if (existing && existing.length >= 32) return existing;
  const secret = generateJwtSecret();
  await mkdir(dataDir, { recursive: true });
  await writeFile(file, `${secret}\n`, { mode: 0o600 });
  return secret;
}
