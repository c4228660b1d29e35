// Runs once when a server process starts (Next's instrumentation hook).
export async function register(): Promise<void> {
  if (process.env.NEXT_RUNTIME === "nodejs") {
    const { answerForbiddenMethods } = await import("./lib/http/forbidden-methods");
    answerForbiddenMethods();
    const { limitBodyTime } = await import("./lib/http/body-deadline");
    limitBodyTime();
    const { answerClientErrors } = await import("./lib/http/client-errors");
    answerClientErrors();
  }
}
