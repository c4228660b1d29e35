// Sign-in: the operator password from NIGHTSHIFT_OPERATOR_PASSWORD. A signed-in visitor goes straight on.
import { redirect } from "next/navigation";
import { consoleConfig, ConsoleConfigError } from "@/lib/console/config";
import { safeNext } from "@/lib/console/operations";
import { currentSession } from "@/lib/console/server";
import { LoginForm } from "./login-form";

export const dynamic = "force-dynamic";
export const metadata = { title: "Sign in · Nightshift" };

export default async function LoginPage({ searchParams }: { searchParams: Promise<Record<string, string | string[] | undefined>> }) {
  const params = await searchParams;
  const next = safeNext(typeof params.next === "string" ? params.next : null);
  let problem: string | null = null;
  try {
    consoleConfig();
  } catch (e) {
    if (!(e instanceof ConsoleConfigError)) throw e;
    problem = e.message;
  }
  if (!problem && (await currentSession())) redirect(next);
  return (
    <main className="login">
      <h1>Nightshift</h1>
      <p className="muted">Sign in to review the night&apos;s work.</p>
      {problem ? (
        <p className="notice error" role="alert">
          {problem}
        </p>
      ) : (
        <LoginForm next={next} />
      )}
    </main>
  );
}
