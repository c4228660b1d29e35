// web_fetch: GET a public http(s) URL and hand the model readable text.
//
// The address rule (lib/agents/tools/ip.ts) is checked after DNS resolution, on every address the name resolves to,
// and again on every redirect hop. The connection then goes to the exact address that was checked: the request
// carries a `lookup` that returns that address, so the socket never asks DNS again and a name that "rebinds" to a
// private address between check and connect gains nothing. The URL's host name still drives the Host header and
// TLS (SNI and certificate verification), so virtual hosting and HTTPS work as usual.
import { lookup as dnsLookup } from "node:dns/promises";
import http from "node:http";
import https from "node:https";
import type { LookupFunction } from "node:net";
import { pipeline, type Readable } from "node:stream";
import zlib from "node:zlib";
import { convert } from "html-to-text";
import { z } from "zod";
import type { WebFetchConfig } from "./config";
import { classifyAddress, ipFamily, parseAllowList, type AllowList } from "./ip";
import { defineTool, ToolError } from "./types";

export interface ResolvedAddress {
  address: string;
  family: number;
}
/** Resolves a host name to all of its addresses. */
export type Resolver = (hostname: string) => Promise<ResolvedAddress[]>;
export type ConnectObserver = (target: { url: string; host: string; address: string; port: number }) => void;

export type WebFetchResult = {
  /** The URL asked for. */
  url: string;
  /** The URL of the response, after redirects. */
  final_url: string;
  status: number;
  content_type: string | null;
  title?: string;
  text: string;
  /** Present when the body passed the byte cap or the text passed the character cap. */
  truncated?: true;
  /** Body bytes read (after content decoding). */
  bytes: number;
};

const systemResolver: Resolver = async (hostname) =>
  (await dnsLookup(hostname, { all: true, verbatim: true })).map((a) => ({ address: a.address, family: a.family }));

const ACCEPT = "text/html,application/xhtml+xml,text/plain;q=0.9,application/json;q=0.9,text/*;q=0.8,*/*;q=0.1";
const REDIRECTS = new Set([301, 302, 303, 307, 308]);

export async function webFetch(
  rawUrl: string,
  cfg: WebFetchConfig,
  opts: { signal?: AbortSignal; maxChars?: number } = {},
): Promise<WebFetchResult> {
  const deadline = AbortSignal.timeout(cfg.timeoutMs);
  const signal = opts.signal ? AbortSignal.any([deadline, opts.signal]) : deadline;
  const allow = parseAllowList(cfg.allow);
  const maxChars = Math.min(opts.maxChars ?? cfg.maxChars, cfg.maxChars);
  const started = parseTarget(rawUrl);
  let url = started;

  try {
    for (let hop = 0; ; hop++) {
      const target = await resolveAndCheck(url, allow, cfg.resolve ?? systemResolver, signal);
      const res = await get(url, target, cfg, signal);
      const status = res.statusCode ?? 0;
      const location = res.headers.location;
      if (REDIRECTS.has(status) && location) {
        res.destroy();
        if (hop >= cfg.maxRedirects) throw new ToolError(`stopped after ${cfg.maxRedirects} redirects (at ${url.href})`);
        let next: URL;
        try {
          next = new URL(location, url);
        } catch {
          throw new ToolError(`redirect from ${url.href} to an invalid URL: ${location.slice(0, 200)}`);
        }
        url = parseTarget(next.href);
        continue;
      }
      const body = await readBody(res, url, cfg.maxBytes, signal);
      const result: WebFetchResult = {
        url: started.href,
        final_url: url.href,
        status,
        content_type: typeof res.headers["content-type"] === "string" ? res.headers["content-type"] : null,
        text: body.text,
        bytes: body.bytes,
      };
      if (body.title) result.title = body.title;
      if (result.text.length > maxChars) {
        result.text = result.text.slice(0, maxChars);
        result.truncated = true;
      }
      if (body.truncated) result.truncated = true;
      return result;
    }
  } catch (err) {
    if (deadline.aborted) throw new ToolError(`timed out after ${cfg.timeoutMs} ms fetching ${url.href}`, { cause: err });
    if (signal.aborted) throw new ToolError(`fetch of ${url.href} was cancelled`, { cause: err });
    if (err instanceof ToolError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    throw new ToolError(`fetch of ${url.href} failed: ${code ? `${code} ` : ""}${(err as Error).message}`, { cause: err });
  }
}

/** Only absolute http(s) URLs without credentials; the fragment is never sent. */
function parseTarget(raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ToolError(`not a valid absolute URL: ${raw.slice(0, 200)}`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new ToolError(`refused: only http:// and https:// URLs can be fetched, not ${url.protocol}`);
  }
  // Credentials in a URL would be sent to whoever the URL (or a redirect) points at; the model has no business
  // holding any.
  if (url.username || url.password) throw new ToolError("refused: URLs with credentials (user:password@host) are not fetched");
  url.hash = "";
  return url;
}

/** Resolves the URL's host and checks every address; returns the one to connect to. */
async function resolveAndCheck(url: URL, allow: AllowList, resolve: Resolver, signal: AbortSignal): Promise<ResolvedAddress> {
  const host = bare(url.hostname);
  const literal = ipFamily(host);
  let addresses: ResolvedAddress[];
  if (literal) {
    addresses = [{ address: host, family: literal }];
  } else {
    try {
      addresses = await abortable(resolve(host), signal);
    } catch (err) {
      if (signal.aborted) throw err;
      throw new ToolError(`could not resolve ${host}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    if (addresses.length === 0) throw new ToolError(`could not resolve ${host}: no addresses`);
  }
  const hostAllowed = !literal && allow.allowsHost(host);
  // Every address must pass, not just the one we would use: a name that mixes public and private answers is
  // refused outright rather than trusted to keep resolving the same way.
  for (const a of addresses) {
    if (hostAllowed || allow.allowsAddress(a.address)) continue;
    const verdict = classifyAddress(a.address);
    if (verdict.blocked) {
      const via = literal ? "" : ` (${host} resolves to ${a.address})`;
      throw new ToolError(
        `refused: ${url.href} points at a ${verdict.reason} address${via}; web_fetch only reaches public addresses`,
      );
    }
  }
  return addresses[0]!;
}

function get(url: URL, target: ResolvedAddress, cfg: WebFetchConfig, signal: AbortSignal): Promise<http.IncomingMessage> {
  const secure = url.protocol === "https:";
  const host = bare(url.hostname);
  const port = Number(url.port || (secure ? 443 : 80));
  // The socket's only source of an address: the one that was checked.
  const lookup: LookupFunction = (_hostname, options, callback) => {
    if (options?.all) callback(null, [{ address: target.address, family: target.family }]);
    else callback(null, target.address, target.family);
  };
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    cfg.onConnect?.({ url: url.href, host, address: target.address, port });
    const req = (secure ? https : http).request(
      {
        method: "GET",
        host,
        port,
        path: `${url.pathname}${url.search}`,
        headers: {
          host: url.host,
          "user-agent": cfg.userAgent,
          accept: ACCEPT,
          "accept-encoding": "gzip, deflate, br",
        },
        agent: false, // no pooled socket from another host's check
        lookup,
        signal,
        ...(secure && !ipFamily(host) ? { servername: host } : {}),
      },
      resolve,
    );
    req.on("error", reject);
    req.end();
  });
}

type Kind = "html" | "text" | "binary" | "unknown";

function kindOf(mime: string): Kind {
  if (!mime) return "unknown";
  if (mime === "text/html" || mime === "application/xhtml+xml") return "html";
  if (mime.startsWith("text/")) return "text";
  if (/^application\/([\w.-]+\+)?(json|xml)$/.test(mime)) return "text";
  if (/^application\/(javascript|ecmascript|x-javascript|x-ndjson|ndjson|yaml|x-yaml|toml|csv|x-sh|sql|graphql)$/.test(mime)) {
    return "text";
  }
  return "binary";
}

async function readBody(
  res: http.IncomingMessage,
  url: URL,
  maxBytes: number,
  signal: AbortSignal,
): Promise<{ text: string; title?: string; bytes: number; truncated: boolean }> {
  const contentType = typeof res.headers["content-type"] === "string" ? res.headers["content-type"] : "";
  const mime = contentType.split(";")[0]!.trim().toLowerCase();
  let kind = kindOf(mime);
  if (kind === "binary") {
    res.destroy();
    throw new ToolError(`refused: ${url.href} is ${mime}, which is binary; web_fetch returns text and HTML only`);
  }

  const { buf, truncated } = await readCapped(res, maxBytes);
  if (signal.aborted) throw signal.reason;

  if (kind === "unknown") {
    // No declared type: sniff. NUL bytes in the first few KB mean binary.
    if (buf.subarray(0, 4096).includes(0)) {
      throw new ToolError(`refused: ${url.href} has no content type and looks binary; web_fetch returns text only`);
    }
    kind = /^\s*(<!doctype html|<html|<head|<body)/i.test(buf.subarray(0, 1024).toString("latin1")) ? "html" : "text";
  }

  const charset = /charset\s*=\s*"?([\w.:-]+)/i.exec(contentType)?.[1] ??
    (kind === "html" ? /<meta[^>]+charset\s*=\s*["']?([\w.:-]+)/i.exec(buf.subarray(0, 2048).toString("latin1"))?.[1] : undefined);
  const decoded = decode(buf, charset);
  if (kind === "html") {
    return { text: htmlToText(decoded, url.href), title: titleOf(decoded), bytes: buf.length, truncated };
  }
  return { text: decoded, bytes: buf.length, truncated };
}

/** Reads the (decoded) body up to `max` bytes, then stops reading and closes the connection. */
async function readCapped(res: http.IncomingMessage, max: number): Promise<{ buf: Buffer; truncated: boolean }> {
  const encoding = String(res.headers["content-encoding"] ?? "identity").trim().toLowerCase();
  let stream: Readable = res;
  const decoder =
    encoding === "gzip" || encoding === "x-gzip"
      ? zlib.createGunzip()
      : encoding === "deflate"
        ? zlib.createInflate()
        : encoding === "br"
          ? zlib.createBrotliDecompress()
          : null;
  if (decoder) {
    // The cap applies to decoded bytes, so a compression bomb stops at the cap too.
    stream = pipeline(res, decoder, () => {});
  } else if (encoding !== "identity" && encoding !== "") {
    res.destroy();
    throw new ToolError(`unsupported content-encoding ${encoding}`);
  }

  const chunks: Buffer[] = [];
  let n = 0;
  let truncated = false;
  try {
    for await (const chunk of stream) {
      const c = chunk as Buffer;
      if (n + c.length > max) {
        chunks.push(c.subarray(0, max - n));
        n = max;
        truncated = true;
        break;
      }
      chunks.push(c);
      n += c.length;
    }
  } finally {
    if (truncated || !res.complete) res.destroy();
  }
  return { buf: Buffer.concat(chunks, n), truncated };
}

function decode(buf: Buffer, charset: string | undefined): string {
  try {
    return new TextDecoder(charset ?? "utf-8").decode(buf);
  } catch {
    return new TextDecoder("utf-8").decode(buf); // unknown label
  }
}

function htmlToText(html: string, baseUrl: string): string {
  return convert(html, {
    wordwrap: false,
    selectors: [
      { selector: "img", format: "skip" },
      { selector: "script", format: "skip" },
      { selector: "style", format: "skip" },
      { selector: "noscript", format: "skip" },
      { selector: "template", format: "skip" },
      { selector: "svg", format: "skip" },
      { selector: "iframe", format: "skip" },
      { selector: "picture", format: "skip" },
      { selector: "video", format: "skip" },
      { selector: "audio", format: "skip" },
      { selector: "canvas", format: "skip" },
      // Links resolved against the page's URL (html-to-text's own baseUrl only handles root-relative paths).
      {
        selector: "a",
        options: { pathRewrite: (href: string) => absolute(href, baseUrl), hideLinkHrefIfSameAsText: true, noAnchorUrl: true },
      },
    ],
  })
    .replace(/\n{3,}/g, "\n\n")
    .trim();
}

function titleOf(html: string): string | undefined {
  const m = /<title[^>]*>([\s\S]*?)<\/title>/i.exec(html);
  if (!m) return undefined;
  const title = convert(m[1]!, { wordwrap: false }).replace(/\s+/g, " ").trim().slice(0, 300);
  return title || undefined;
}

function absolute(href: string, base: string): string {
  try {
    return new URL(href, base).href;
  } catch {
    return href;
  }
}

const bare = (hostname: string) => hostname.replace(/^\[(.*)\]$/, "$1");

function abortable<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

export const WebFetchInput = z.object({
  url: z.string().min(1).max(4096).describe("Absolute http:// or https:// URL of a public page or text document."),
  max_chars: z
    .number()
    .int()
    .min(500)
    .max(200_000)
    .optional()
    .describe("Return at most this many characters of text (the configured cap still applies)."),
});

export const webFetchTool = defineTool({
  name: "web_fetch",
  description:
    "Fetch a public web page or text document with an HTTP GET and return it as readable text, with its title. " +
    "HTML is converted to plain text (links kept, scripts, styles and images dropped); JSON, XML and other text is " +
    "returned as is; binary content (images, PDFs, archives) is refused. Private, loopback and cloud-metadata " +
    "addresses are refused. Long documents are cut off and marked `truncated`.",
  input: WebFetchInput,
  sideEffect: false,
  run: (input, ctx) => webFetch(input.url, ctx.config.webFetch, { signal: ctx.signal, maxChars: input.max_chars }),
});
