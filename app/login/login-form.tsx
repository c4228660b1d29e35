"use client";
import { useActionState } from "react";
import { signInAction, type SignInState } from "./actions";

export function LoginForm({ next }: { next: string }) {
  const [state, action, pending] = useActionState<SignInState, FormData>(signInAction, {});
  return (
    <form action={action} aria-label="Sign in">
      <input type="hidden" name="next" value={next} />
      <label htmlFor="password">Operator password</label>
      <input id="password" name="password" type="password" autoComplete="current-password" required autoFocus />
      {state.error ? (
        <p className="notice error" role="alert">
          {state.error}
        </p>
      ) : null}
      <div className="actions">
        <button type="submit" disabled={pending}>
          {pending ? "Signing in…" : "Sign in"}
        </button>
      </div>
    </form>
  );
}
