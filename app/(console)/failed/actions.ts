"use server";
// The Failed page's mutations (server actions); the work lives in lib/console/failures.ts.
import { redirect } from "next/navigation";
import { discardFromConsole, replayFromConsole, replaySelectedFromConsole, type FailedFormResult } from "@/lib/console/failures";
import { requestContext } from "@/lib/console/server";
import { db } from "@/lib/db/server";

export type FailedState = { result?: FailedFormResult };

async function run(op: typeof replayFromConsole, form: FormData): Promise<FailedState> {
  const result = await op(await requestContext(form), db());
  if (!result.ok && result.code === "unauthenticated") redirect("/login");
  return { result };
}

export async function replayAction(_prev: FailedState, form: FormData): Promise<FailedState> {
  return run(replayFromConsole, form);
}

export async function discardAction(_prev: FailedState, form: FormData): Promise<FailedState> {
  return run(discardFromConsole, form);
}

export async function replaySelectedAction(_prev: FailedState, form: FormData): Promise<FailedState> {
  return run(replaySelectedFromConsole, form);
}
