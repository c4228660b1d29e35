// The one admin (secret-key) Supabase client of the server process, built from the validated environment.
import "server-only";
import { env } from "@/lib/env";
import { createAdminClient, type AdminClient } from "./admin";

let client: AdminClient | undefined;
let clientFor: string | undefined;

export function db(): AdminClient {
  const e = env();
  const key = `${e.SUPABASE_URL}|${e.SUPABASE_SECRET_KEY}|${e.NIGHTSHIFT_DIRECT_RPC}`;
  if (!client || clientFor !== key) {
    client = createAdminClient({
      url: e.SUPABASE_URL,
      secretKey: e.SUPABASE_SECRET_KEY,
      directRpc: e.NIGHTSHIFT_DIRECT_RPC === "on",
    });
    clientFor = key;
  }
  return client;
}
