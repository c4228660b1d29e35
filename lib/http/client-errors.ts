// Requests Node's HTTP parser refuses before any request exists — an oversized header block (431), an oversized
// chunk extension (413), a malformed request line or header (400), a request whose headers never finished within
// Node's requestTimeout (408) — never reach Next, and Node answers them itself with a bare status line: no body, no
// JSON, none of the security headers. This answers them in the API's shape instead, on the Node server: JSON
// `{ error: { code, message } }` for /api paths and for a request whose path could not be read, plain text for the
// console's pages; then the connection closes, as Node's own answer does. Installed from instrumentation.ts.
import http from "node:http";
import type { Duplex } from "node:stream";
import { isApiUrl, nodeErrorAnswer } from "./node-answer";
import { addClientErrorHook, type ClientErrorHook } from "./server-hooks";

const REASONS: Record<number, string> = { 400: "Bad Request", 408: "Request Timeout", 413: "Payload Too Large", 431: "Request Header Fields Too Large" };

/** What a parser error is answered with. Exported for tests. */
export function clientErrorAnswer(code: string | undefined): { status: number; code: string; message: string } {
  switch (code) {
    case "HPE_HEADER_OVERFLOW":
      return {
        status: 431,
        code: "request_header_too_large",
        message: `The request's headers are too large (at most ${Math.floor(http.maxHeaderSize / 1024)} KB in all)`,
      };
    case "HPE_CHUNK_EXTENSIONS_OVERFLOW":
      return { status: 413, code: "payload_too_large", message: "A chunk extension of the request body is too large" };
    case "ERR_HTTP_REQUEST_TIMEOUT":
      return { status: 408, code: "request_timeout", message: "The request did not arrive in time" };
    default:
      return { status: 400, code: "invalid_request", message: "The request is not valid HTTP" };
  }
}

/** The path of the request line at the start of the bytes the parser refused, when it can be read. */
function pathOf(raw: Buffer | undefined): string | null {
  if (!raw) return null;
  const m = /^[A-Z]{1,20} (\/[^\s]*) /.exec(raw.subarray(0, 2048).toString("latin1"));
  return m ? m[1]! : null;
}

/** The whole HTTP response, as bytes to write to the socket. Exported for tests. */
export function clientErrorResponse(err: { code?: string; rawPacket?: Buffer }): string {
  const a = clientErrorAnswer(err.code);
  const path = pathOf(err.rawPacket);
  // JSON unless the request visibly was for a console page: an API client is the one that reads the body.
  const { body, headers } = nodeErrorAnswer(path === null || isApiUrl(path), a.code, a.message, { Connection: "close" });
  const head = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join("");
  return `HTTP/1.1 ${a.status} ${REASONS[a.status]}\r\n${head}\r\n${body}`;
}

const hook: ClientErrorHook = (err, socket) => {
  // As Node's own handler: answer only when nothing of a response has been written on this socket yet (a parse
  // error in a later pipelined request, after an answer started, is just closed).
  const inFlight = (socket as Duplex & { _httpMessage?: { _headerSent?: boolean } | null })._httpMessage;
  if (socket.writable && !inFlight?._headerSent) socket.write(clientErrorResponse(err));
  socket.destroy(err);
  return true;
};

export function answerClientErrors(): void {
  addClientErrorHook("client-errors", hook);
}
