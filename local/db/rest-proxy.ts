// The local stand-in for Supabase's API gateway: serves PostgREST (listening on a private unix socket) under
// `/rest/v1`, the path supabase-js always calls. The Supabase URL the app gets is this server's.
//
// It works on the bytes, not on parsed messages: each client connection gets its own connection to PostgREST, the
// request line of every request is rewritten (`/rest/v1/x` → `/x`) and everything else — headers, bodies, and all of
// PostgREST's answers — is passed through unchanged. The request framing (Content-Length or chunked) is followed only
// to find where the next request line starts. A Node http server that re-issued each request cost ~0.5 ms of CPU per
// call on this 2-core box, a quarter of what PostgREST itself costs, on every database call the app makes
// (docs/benchmarks.md, session 7); this costs a fraction of that. Answers of its own: 404 (JSON) for a path outside
// `/rest/v1`, 502 (JSON) when PostgREST cannot be reached, 400/431 for a request it cannot frame — each sent once the
// answers to earlier requests on the connection are through, then the connection is closed.
import net from "node:net";

export const REST_PREFIX = "/rest/v1";

export interface RestProxy {
  port: number;
  close(): Promise<void>;
}

/** Longest request head (request line + headers) accepted; PostgREST's own limit is of the same order. */
const MAX_HEAD_BYTES = 64 * 1024;
/** Longest chunk-size or trailer line accepted in a chunked body. */
const MAX_LINE_BYTES = 8 * 1024;

export async function startRestProxy(opts: { socketPath: string; port?: number }): Promise<RestProxy> {
  const connections = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (client) => {
    connections.add(client);
    client.once("close", () => connections.delete(client));
    proxyConnection(client, opts.socketPath);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", (e: NodeJS.ErrnoException) =>
      reject(e.code === "EADDRINUSE" ? new Error(`port ${opts.port} is in use (the Supabase URL's port)`) : e),
    );
    server.listen(opts.port ?? 0, "127.0.0.1", () => resolve());
  });
  return {
    port: (server.address() as net.AddressInfo).port,
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const c of connections) c.destroy();
      await closed;
    },
  };
}

function answer(status: number, reason: string, message: string): Buffer {
  const body = JSON.stringify({ message });
  return Buffer.from(
    `HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n` +
      `connection: close\r\n\r\n${body}`,
  );
}

const enum State {
  Head,
  Body,
  ChunkSize,
  ChunkData,
  ChunkEnd,
  Trailer,
  Done,
}

/** `/rest/v1/x?y` → `/x?y`; null for a target outside the prefix. */
export function upstreamTarget(target: string): string | null {
  if (!target.startsWith(REST_PREFIX)) return null;
  const rest = target.slice(REST_PREFIX.length);
  if (rest === "") return "/";
  if (rest[0] === "/") return rest;
  if (rest[0] === "?") return `/${rest}`;
  return null; // e.g. /rest/v10
}

function proxyConnection(client: net.Socket, socketPath: string): void {
  let upstream: net.Socket | undefined;
  /** Bytes PostgREST has sent on this connection: none means an error of the upstream is "unreachable" (502). */
  let answered = 0;
  /** An answer of this proxy's own, sent after PostgREST's earlier answers, then the connection ends. */
  let last: Buffer | undefined;
  let state = State.Head as State;
  /** Through a function: TypeScript does not see finish() change `state` inside the loop. */
  const done = () => state === State.Done;
  let remaining = 0;
  let pending: Buffer | undefined;

  /** Stops reading requests; the answer of our own goes out once PostgREST's earlier answers are through. */
  const finish = (own: Buffer) => {
    state = State.Done;
    pending = undefined;
    last = own;
    client.pause();
  };

  const connect = (): net.Socket => {
    const up = net.connect({ path: socketPath, allowHalfOpen: true });
    up.on("data", (chunk: Buffer) => {
      answered += chunk.length;
      if (!client.write(chunk)) {
        up.pause();
        client.once("drain", () => up.resume());
      }
    });
    up.on("end", () => {
      if (last) client.end(last);
      else client.end();
    });
    up.on("error", (e) => {
      if (answered === 0 && !client.destroyed && client.writable) {
        client.end(answer(502, "Bad Gateway", `PostgREST unreachable: ${e.message}`));
      } else {
        client.destroy();
      }
    });
    return up;
  };

  const send = (parts: Buffer[]) => {
    if (parts.length === 0) return;
    upstream ??= connect();
    const up = upstream;
    if (parts.length > 1) up.cork();
    let ok = true;
    for (const p of parts) ok = up.write(p);
    if (parts.length > 1) up.uncork();
    if (!ok) {
      client.pause();
      up.once("drain", () => {
        if (state !== State.Done) client.resume();
      });
    }
  };

  client.on("data", (chunk: Buffer) => {
    if (state === State.Done) return;
    const data = pending ? Buffer.concat([pending, chunk]) : chunk;
    pending = undefined;
    const out: Buffer[] = [];
    let i = 0;
    while (i < data.length && !done()) {
      switch (state) {
        case State.Head: {
          // Empty lines before a request line are ignored (RFC 9112 §2.2).
          while (i + 1 < data.length && data[i] === 13 && data[i + 1] === 10) i += 2;
          const end = data.indexOf("\r\n\r\n", i, "latin1");
          if (end < 0) {
            if (data.length - i > MAX_HEAD_BYTES) finish(answer(431, "Request Header Fields Too Large", "request head too large"));
            else pending = data.subarray(i);
            i = data.length;
            break;
          }
          const lineEnd = data.indexOf("\r\n", i, "latin1");
          const line = data.toString("latin1", i, lineEnd);
          const sp1 = line.indexOf(" ");
          const sp2 = line.indexOf(" ", sp1 + 1);
          if (sp1 <= 0 || sp2 < 0) {
            finish(answer(400, "Bad Request", "malformed request line"));
            break;
          }
          const method = line.slice(0, sp1);
          const target = line.slice(sp1 + 1, sp2);
          const path = upstreamTarget(target);
          if (path === null) {
            finish(
              answer(404, "Not Found", `no route for ${method} ${target.split("?")[0]}: only ${REST_PREFIX} is served here`),
            );
            break;
          }
          const framing = bodyFraming(data.toString("latin1", lineEnd + 2, end));
          if (framing === "bad") {
            finish(answer(400, "Bad Request", "the request's length cannot be determined"));
            break;
          }
          out.push(Buffer.from(`${method} ${path}${line.slice(sp2)}`, "latin1"), data.subarray(lineEnd, end + 4));
          i = end + 4;
          if (framing === "chunked") state = State.ChunkSize;
          else if (framing > 0) {
            state = State.Body;
            remaining = framing;
          }
          break;
        }
        case State.Body:
        case State.ChunkData:
        case State.ChunkEnd: {
          const n = Math.min(remaining, data.length - i);
          out.push(data.subarray(i, i + n));
          i += n;
          remaining -= n;
          if (remaining === 0) {
            if (state === State.Body) state = State.Head;
            else if (state === State.ChunkData) {
              state = State.ChunkEnd;
              remaining = 2; // the CRLF after a chunk's data
            } else state = State.ChunkSize;
          }
          break;
        }
        case State.ChunkSize:
        case State.Trailer: {
          const lineEnd = data.indexOf("\r\n", i, "latin1");
          if (lineEnd < 0) {
            if (data.length - i > MAX_LINE_BYTES) finish(answer(400, "Bad Request", "chunk line too long"));
            else pending = data.subarray(i);
            i = data.length;
            break;
          }
          const lineText = data.toString("latin1", i, lineEnd);
          out.push(data.subarray(i, lineEnd + 2));
          i = lineEnd + 2;
          if (state === State.Trailer) {
            if (lineText === "") state = State.Head; // the empty line that ends the trailer section
            break;
          }
          const hex = lineText.split(";")[0]!.trim();
          const size = /^[0-9a-fA-F]{1,12}$/.test(hex) ? parseInt(hex, 16) : NaN;
          if (Number.isNaN(size)) {
            out.pop(); // the line is not forwarded
            finish(answer(400, "Bad Request", "malformed chunk size"));
            break;
          }
          if (size === 0) state = State.Trailer;
          else {
            state = State.ChunkData;
            remaining = size;
          }
          break;
        }
      }
    }
    send(out);
    if (done()) {
      // PostgREST answers a connection's requests in order: ending its input lets it finish the ones it has, then it
      // closes (upstream "end" above), and our answer follows theirs.
      if (upstream && !upstream.destroyed) upstream.end();
      else if (last) client.end(last);
      else client.end();
    }
  });

  client.on("end", () => {
    // The client sent all it will send (it may still read): PostgREST answers what it has, then closes.
    if (upstream) upstream.end();
    else if (state !== State.Done) client.end();
  });
  client.on("error", () => upstream?.destroy());
  client.on("close", () => upstream?.destroy());
}

/**
 * How the body of a request with these header lines is framed (RFC 9112 §6): "chunked", a Content-Length (0 for
 * none), or "bad" when it cannot be told (a Transfer-Encoding that does not end in chunked, conflicting lengths).
 */
export function bodyFraming(headerLines: string): number | "chunked" | "bad" {
  let length: number | undefined;
  let chunked: boolean | undefined;
  let start = 0;
  while (start < headerLines.length) {
    let end = headerLines.indexOf("\r\n", start);
    if (end < 0) end = headerLines.length;
    const colon = headerLines.indexOf(":", start);
    if (colon > start && colon < end) {
      const nameLength = colon - start;
      if (nameLength === 14 || nameLength === 17) {
        const name = headerLines.slice(start, colon).toLowerCase();
        const value = headerLines.slice(colon + 1, end).trim();
        if (name === "content-length") {
          for (const v of value.split(",")) {
            if (!/^\d{1,15}$/.test(v.trim())) return "bad";
            const n = Number(v.trim());
            if (length !== undefined && length !== n) return "bad";
            length = n;
          }
        } else if (name === "transfer-encoding") {
          const codings = value.toLowerCase().split(",").map((c) => c.trim()).filter(Boolean);
          chunked = codings[codings.length - 1] === "chunked";
          if (!chunked) return "bad";
        }
      }
    }
    start = end + 2;
  }
  if (chunked) return "chunked"; // Transfer-Encoding overrides Content-Length
  return length ?? 0;
}
