"use server";
// Sign-in. The operation (lib/console/operations.ts) checks the origin, the rate limit and the password; this
// wrapper only moves the session into its cookie and redirects.
import { cookies } from "next/headers";
import { redirect } from "next/navigation";
import { signIn } from "@/lib/console/operations";
import { db } from "@/lib/db/server";
import { requestContext } from "@/lib/console/server";
import { SESSION_COOKIE, sessionCookieOptions } from "@/lib/console/session";

export interface SignInState {
  error?: string;
}

export async function signInAction(_prev: SignInState, form: FormData): Promise<SignInState> {
  const result = await signIn(await requestContext(form), { db: db() });
  if (!result.ok) return { error: result.error };
  (await cookies()).set(SESSION_COOKIE, result.cookieValue, sessionCookieOptions(result.session, result.secure));
  redirect(result.next);
}
