// Request hooks on every Node HTTP server of this process, run before the server's own 'request' listeners (Next's):
// one patch of http.Server.prototype.emit, shared by what must act before Next sees a request —
// lib/http/forbidden-methods.ts (methods Next cannot handle) and lib/http/body-deadline.ts (slow bodies).
// Installed from instrumentation.ts (Node runtime only).
import http from "node:http";

/** Runs for each request, in the order hooks were added; returns true when it answered (the rest is skipped). */
export type RequestHook = (req: http.IncomingMessage, res: http.ServerResponse) => boolean;

const HOOKS = Symbol.for("nightshift.requestHooks");
type Patched = http.Server & { [HOOKS]?: Map<string, RequestHook> };

/** Adds (or, under the same name, replaces) a hook: adding twice never runs a hook twice. */
export function addRequestHook(name: string, hook: RequestHook): void {
  const proto = http.Server.prototype as Patched;
  let hooks = proto[HOOKS];
  if (!hooks) {
    const all = (hooks = proto[HOOKS] = new Map());
    const emit = proto.emit as (this: http.Server, e: string | symbol, ...a: unknown[]) => boolean;
    proto.emit = function (this: http.Server, event: string | symbol, ...args: unknown[]): boolean {
      if (event === "request") {
        const [req, res] = args as [http.IncomingMessage, http.ServerResponse];
        for (const h of all.values()) if (h(req, res)) return true;
      }
      return emit.call(this, event, ...args);
    } as typeof proto.emit;
  }
  hooks.set(name, hook);
}
