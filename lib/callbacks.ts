// Delivers a task's outcome to the `callback_url` it was submitted with (mission pattern 4: webhooks), so the
// caller learns the result without polling. Each delivery is signed with HMAC-SHA256 over `<t>.<body>`
// (header `Nightshift-Signature: t=<unix seconds>,v1=<hex>`, verify with a constant-time compare), carries an
// `Idempotency-Key`, and goes through the side-effect ledger: delivered at most once per (task, event) even when
// its step is retried. The request goes through lib/net/guarded-fetch.ts: the target must not resolve to a private
// address unless allow-listed (NIGHTSHIFT_FETCH_ALLOW, shared with web_fetch), and the socket connects to the
// address that was checked (no second DNS lookup, so DNS rebinding gains nothing).
import { createHmac } from "node:crypto";
import { TransientToolError, loadToolConfig } from "@/lib/agents/tools";
import type { AdminClient } from "@/lib/db/admin";
import type { Json } from "@/lib/db/database.types";
import { GuardedFetchError, guardedFetch, type GuardedFetchOptions, type GuardedResponse } from "@/lib/net/guarded-fetch";
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
  args: {
    taskId: string;
    url: string;
    event: string;
    payload: Record<string, Json>;
    secret: string | undefined;
    /** DNS and connect hooks (tests inject a rebinding resolver); default: the OS resolver. */
    net?: Pick<GuardedFetchOptions, "resolve" | "onConnect">;
  },
): Promise<CallbackResult> {
  const { result } = await runOnce<CallbackResult>(
    db,
    { taskId: args.taskId, toolUseId: `callback:${args.event}`, tool: "callback", request: { url: args.url, event: args.event } },
    async ({ idempotencyKey }) => {
      const body = JSON.stringify({ type: args.event, task_id: args.taskId, ...args.payload });
      const headers: Record<string, string> = { "content-type": "application/json", "idempotency-key": idempotencyKey };
      if (args.secret) headers["nightshift-signature"] = signCallback(args.secret, Math.floor(Date.now() / 1000), body);
      let res: GuardedResponse;
      try {
        // Redirects are not followed (maxRedirects 0): a 3xx is a permanent refusal, recorded below.
        res = await guardedFetch(args.url, {
          method: "POST",
          headers,
          body,
          allow: loadToolConfig().webFetch.allow,
          signal: AbortSignal.timeout(TIMEOUT_MS),
          purpose: "callbacks",
          ...args.net,
        });
      } catch (err) {
        if (err instanceof GuardedFetchError && (err.kind === "refused" || err.kind === "invalid_url")) {
          return { delivered: false, status: null, reason: err.message };
        }
        throw new TransientToolError(`callback to ${hostOf(args.url)} failed: ${(err as Error).message}`);
      }
      res.body.destroy();
      const ok = res.status >= 200 && res.status < 300;
      if (ok) return { delivered: true, status: res.status, reason: null };
      if (res.status === 408 || res.status === 429 || res.status >= 500) {
        throw new TransientToolError(`callback answered ${res.status}`);
      }
      // A permanent refusal (4xx, a redirect) is recorded, not retried.
      return { delivered: false, status: res.status, reason: `callback answered ${res.status}` };
    },
  );
  return result;
}

function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return "an invalid URL";
  }
}
