"use server";
// The console's mutations. Each one is a POST (a server action) and starts with guardMutation: a live session,
// a same-origin request and the session's CSRF token. The work itself lives in lib/console/operations.ts.
import { refresh } from "next/cache";
import { cookies } from "next/headers";
import { redirect } from "next/navigation";
import { relayAfterResponse } from "@/inngest/outbox-relay";
import { db } from "@/lib/db/server";
import {
  cancelFromConsole,
  decide,
  guardMutation,
  queueWork,
  updateAgentFromConsole,
  type AgentFormResult,
  type DecideFormResult,
} from "@/lib/console/operations";
import { requestContext } from "@/lib/console/server";
import { endSession } from "@/lib/console/session-store";
import { SESSION_COOKIE } from "@/lib/console/session";

export interface FormState {
  error?: string;
  ok?: string;
  taskId?: string;
}

export async function queueWorkAction(_prev: FormState, form: FormData): Promise<FormState> {
  const result = await queueWork(await requestContext(form), db());
  // Send what the operation recorded in the outbox once the page has its answer (docs/outbox.md).
  if (result.ok) relayAfterResponse();
  if (!result.ok) {
    if (result.code === "unauthenticated") redirect("/login");
    return { error: result.error };
  }
  refresh();
  return { ok: result.replayed ? "Already queued" : "Queued", taskId: result.taskId };
}

export type DecisionState = { result?: DecideFormResult };

export async function decideAction(_prev: DecisionState, form: FormData): Promise<DecisionState> {
  const result = await decide(await requestContext(form), db());
  if (result.ok) relayAfterResponse();
  if (!result.ok && result.code === "unauthenticated") redirect("/login");
  return { result };
}

export type AgentFormState = { result?: AgentFormResult };

export async function updateAgentAction(_prev: AgentFormState, form: FormData): Promise<AgentFormState> {
  const result = await updateAgentFromConsole(await requestContext(form), db());
  if (!result.ok && result.code === "unauthenticated") redirect("/login");
  if (result.ok) refresh();
  return { result };
}

export async function cancelTaskAction(form: FormData): Promise<void> {
  const result = await cancelFromConsole(await requestContext(form), db());
  if (result.ok) relayAfterResponse();
  if (!result.ok && result.code === "unauthenticated") redirect("/login");
  // The task page shows the outcome (its status); a refused or stale request changes nothing.
  refresh();
}

export async function signOutAction(form: FormData): Promise<void> {
  const guard = guardMutation(await requestContext(form));
  // The session ends server side (every copy of the cookie stops working), then the cookie goes. An expired
  // session signs out anyway; a cross-site or token-less request changes nothing.
  if (guard.ok) await endSession(db(), guard.session.sid);
  if (guard.ok || guard.code === "unauthenticated") (await cookies()).delete(SESSION_COOKIE);
  redirect("/login");
}
