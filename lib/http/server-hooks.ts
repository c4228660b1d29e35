// Hooks on every Node HTTP server of this process, run before the server's own listeners (Next's): one patch of
// http.Server.prototype.emit, shared by what must act before Next sees a request —
// lib/http/forbidden-methods.ts (methods Next cannot handle) and lib/http/body-deadline.ts (slow bodies) — and by
// what must answer a request Node's parser refused before any request existed (lib/http/client-errors.ts: an
// oversized header, a malformed request line).
// Installed from instrumentation.ts (Node runtime only).
import http from "node:http";
import type { Duplex } from "node:stream";

/** Runs for each request, in the order hooks were added; returns true when it answered (the rest is skipped). */
export type RequestHook = (req: http.IncomingMessage, res: http.ServerResponse) => boolean;
/** Runs for each 'clientError' (Node's parser refused the bytes); returns true when it handled the socket. */
export type ClientErrorHook = (err: NodeJS.ErrnoException & { rawPacket?: Buffer }, socket: Duplex) => boolean;

const HOOKS = Symbol.for("nightshift.requestHooks");
const CLIENT_ERROR_HOOKS = Symbol.for("nightshift.clientErrorHooks");
type Patched = http.Server & { [HOOKS]?: Map<string, RequestHook>; [CLIENT_ERROR_HOOKS]?: Map<string, ClientErrorHook> };

function patched(): { requests: Map<string, RequestHook>; clientErrors: Map<string, ClientErrorHook> } {
  const proto = http.Server.prototype as Patched;
  if (!proto[HOOKS]) {
    const requests = (proto[HOOKS] = new Map());
    const clientErrors = (proto[CLIENT_ERROR_HOOKS] = new Map());
    const emit = proto.emit as (this: http.Server, e: string | symbol, ...a: unknown[]) => boolean;
    proto.emit = function (this: http.Server, event: string | symbol, ...args: unknown[]): boolean {
      if (event === "request") {
        const [req, res] = args as [http.IncomingMessage, http.ServerResponse];
        for (const h of requests.values()) if (h(req, res)) return true;
      } else if (event === "clientError") {
        // A listener of the server's own (one added with server.on) keeps its say: Node calls only listeners then.
        if (this.listenerCount("clientError") === 0) {
          const [err, socket] = args as Parameters<ClientErrorHook>;
          for (const h of clientErrors.values()) if (h(err, socket)) return true;
        }
      }
      return emit.call(this, event, ...args);
    } as typeof proto.emit;
  }
  return { requests: proto[HOOKS]!, clientErrors: proto[CLIENT_ERROR_HOOKS]! };
}

/** Adds (or, under the same name, replaces) a hook: adding twice never runs a hook twice. */
export function addRequestHook(name: string, hook: RequestHook): void {
  patched().requests.set(name, hook);
}

/** Adds (or replaces) a 'clientError' hook, run only on servers with no 'clientError' listener of their own. */
export function addClientErrorHook(name: string, hook: ClientErrorHook): void {
  patched().clientErrors.set(name, hook);
}
