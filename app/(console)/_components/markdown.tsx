// A markdown text rendered as sanitised HTML (lib/console/markdown.ts), with the raw text one click away.
import { renderMarkdown } from "@/lib/console/markdown";

export function Markdown({ text, testId }: { text: string; testId?: string }) {
  return (
    <div className="md-block">
      <div className="md" data-testid={testId} dangerouslySetInnerHTML={{ __html: renderMarkdown(text) }} />
      <details className="raw">
        <summary>Raw text</summary>
        <pre data-testid={testId ? `${testId}-raw` : undefined}>{text}</pre>
      </details>
    </div>
  );
}
