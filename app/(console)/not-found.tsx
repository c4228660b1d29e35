// An unknown task, artifact or page: a sentence and a way back.
import Link from "next/link";

export default function NotFound() {
  return (
    <main>
      <h1>Not found</h1>
      <p className="notice error" role="alert">
        There is nothing here: the link may be mistyped, or the task or artifact was removed.
      </p>
      <p>
        <Link href="/">Back to tasks</Link>
      </p>
    </main>
  );
}
