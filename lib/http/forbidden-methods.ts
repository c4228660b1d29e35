// Methods Next has no handler slot for never reach Next: this answers them on the Node HTTP server itself with a 405
// — JSON under /api, plain text elsewhere, as proxy.ts does. Installed once per process from instrumentation.ts (Node
// runtime only).
//   - TRACE and TRACK: Next builds a WHATWG Request for every request and the fetch standard forbids them (undici
//     throws), so `next start` answered them with a text/plain 500 before proxy.ts could see them.
//   - every other unknown method (PROPFIND, M-SEARCH, ...): proxy.ts refuses them, but the hottest API routes skip
//     proxy.ts (its matcher; the cost of Next's middleware adapter per request, docs/benchmarks.md), and Next would
//     answer them with an empty 400. Answered here for every path, so the contract does not depend on the matcher.
// CONNECT is a separate server event Next does not listen for; Node closes such connections itself.
import { KNOWN_METHODS, KNOWN_METHODS_ALLOW } from "./methods";
import { isApiUrl, nodeErrorAnswer } from "./node-answer";
import { addRequestHook } from "./server-hooks";

/** The answer to a method outside KNOWN_METHODS (or null to let Next handle the request). Exported for tests. */
export function unknownMethodAnswer(method: string, url: string): { status: number; headers: Record<string, string>; body: string } | null {
  if (KNOWN_METHODS.has(method)) return null;
  const message = `Method ${method.slice(0, 20)} is not allowed`;
  return { status: 405, ...nodeErrorAnswer(isApiUrl(url), "method_not_allowed", message, { Allow: KNOWN_METHODS_ALLOW }) };
}

export function answerForbiddenMethods(): void {
  addRequestHook("forbidden-methods", (req, res) => {
    const answer = unknownMethodAnswer((req.method ?? "").toUpperCase(), req.url ?? "/");
    if (!answer) return false;
    res.writeHead(answer.status, answer.headers);
    res.end(answer.body);
    req.resume();
    return true;
  });
}
