"use client";
// A page of the console failed on the server: say so in words (the details stay in the server log, quoted by the
// digest), and offer a retry instead of a blank page or a stack trace.
export default function ConsoleError({ error, reset }: { error: Error & { digest?: string }; reset: () => void }) {
  return (
    <main>
      <h1>Something went wrong</h1>
      <p className="notice error" role="alert">
        This page could not be loaded. The database or another part may be briefly unavailable; your data is safe.
        {error.digest ? ` (reference ${error.digest})` : ""}
      </p>
      <div className="actions">
        <button type="button" onClick={() => reset()}>
          Try again
        </button>
        <a className="button" href="/">
          Back to tasks
        </a>
      </div>
    </main>
  );
}
