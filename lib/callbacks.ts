// Delivers a task's outcome to the `callback_url` it was submitted with (mission pattern 4: webhooks), so the
// caller learns the result without polling. Each delivery is signed with HMAC-SHA256 over `<t>.<body>`
// (header `Nightshift-Signature: t=<unix seconds>,v1=<hex>`, verify with a constant-time compare), carries an
// `Idempotency-Key`, and goes through the side-effect ledger: delivered at most once per (task, event) even when
// its step is retried. The target must not resolve to a private address unless allow-listed
// (NIGHTSHIFT_FETCH_ALLOW, shared with web_fetch).
import { createHmac } from "node:crypto";
import { lookup } from "node:dns/promises";
import { TransientToolError, loadToolConfig } from "@/lib/agents/tools";
import { classifyAddress, parseAllowList } from "@/lib/agents/tools/ip";
import type { AdminClient } from "@/lib/db/admin";
import type { Json } from "@/lib/db/database.types";
import { runOnce } from "@/lib/side-effects";

const TIMEOUT_MS = 10_000;

export interface CallbackResult {
  [key: string]: Json;
  delivered: boolean;
  status: number | null;
  reason: string | null;
}

export function signCallback(secret: string, timestamp: number, body: string): string {
  return `t=${timestamp},v1=${createHmac("sha256", secret).update(`${timestamp}.${body}`).digest("hex")}`;
}

export async function deliverCallback(
  db: AdminClient,
  args: { taskId: string; url: string; event: string; payload: Record<string, Json>; secret: string | undefined },
): Promise<CallbackResult> {
  const { result } = await runOnce<CallbackResult>(
    db,
    { taskId: args.taskId, toolUseId: `callback:${args.event}`, tool: "callback", request: { url: args.url, event: args.event } },
    async ({ idempotencyKey }) => {
      const refusal = await refuseTarget(args.url);
      if (refusal) return { delivered: false, status: null, reason: refusal };
      const body = JSON.stringify({ type: args.event, task_id: args.taskId, ...args.payload });
      const headers: Record<string, string> = { "content-type": "application/json", "idempotency-key": idempotencyKey };
      if (args.secret) headers["nightshift-signature"] = signCallback(args.secret, Math.floor(Date.now() / 1000), body);
      let res: Response;
      try {
        res = await fetch(args.url, { method: "POST", headers, body, redirect: "manual", signal: AbortSignal.timeout(TIMEOUT_MS) });
      } catch (err) {
        throw new TransientToolError(`callback to ${new URL(args.url).host} failed: ${(err as Error).message}`);
      }
      await res.body?.cancel().catch(() => {});
      if (res.ok) return { delivered: true, status: res.status, reason: null };
      if (res.status === 408 || res.status === 429 || res.status >= 500) {
        throw new TransientToolError(`callback answered ${res.status}`);
      }
      // A permanent refusal (4xx, a redirect) is recorded, not retried.
      return { delivered: false, status: res.status, reason: `callback answered ${res.status}` };
    },
  );
  return result;
}

/** Why a callback URL must not be called (a private or metadata address), or null when it may. */
async function refuseTarget(url: string): Promise<string | null> {
  const { hostname } = new URL(url);
  const host = hostname.replace(/^\[(.*)\]$/, "$1");
  const allow = parseAllowList(loadToolConfig().webFetch.allow);
  if (allow.allowsHost(host)) return null;
  let addresses: string[];
  try {
    addresses = (await lookup(host, { all: true, verbatim: true })).map((a) => a.address);
  } catch (err) {
    throw new TransientToolError(`callback host ${host} did not resolve: ${(err as Error).message}`);
  }
  for (const address of addresses) {
    if (allow.allowsAddress(address)) continue;
    const verdict = classifyAddress(address);
    if (verdict.blocked) return `callback host ${host} resolves to a refused address (${verdict.reason})`;
  }
  return null;
}
