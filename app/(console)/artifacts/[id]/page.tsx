// `/artifacts/[id]`: one artifact an agent saved — markdown rendered as sanitised HTML (raw text one click away),
// JSON pretty-printed, plain text as is — with its type, size and checksum.
import Link from "next/link";
import { notFound } from "next/navigation";
import { z } from "zod";
import { getArtifact } from "@/lib/artifacts";
import { bytes, when } from "@/lib/console/format";
import { requireSession } from "@/lib/console/server";
import { db } from "@/lib/db/server";
import { Markdown } from "../../_components/markdown";

export const dynamic = "force-dynamic";
export const metadata = { title: "Artifact · Nightshift" };

export default async function ArtifactPage({ params }: { params: Promise<{ id: string }> }) {
  await requireSession();
  const { id } = await params;
  const a = z.uuid().safeParse(id).success ? await getArtifact(db(), id) : null;
  if (!a) notFound();
  let pretty = a.content;
  if (a.content_type === "application/json") {
    try {
      pretty = JSON.stringify(JSON.parse(a.content), null, 2);
    } catch {
      /* shown as stored */
    }
  }
  return (
    <main>
      <p className="muted">
        <Link href={`/tasks/${a.task_id}`}>← Task {a.task_id.slice(0, 8)}</Link>
      </p>
      <h1>{a.name}</h1>
      <p className="muted" data-testid="artifact-meta">
        {a.content_type} · {bytes(a.bytes)} · saved {when(a.created_at)} · sha256 <code>{a.sha256.slice(0, 12)}…</code>
      </p>
      {a.content_type === "text/markdown" ? <Markdown text={a.content} testId="artifact" /> : <pre data-testid="artifact">{pretty}</pre>}
    </main>
  );
}
