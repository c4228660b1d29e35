// web_fetch: GET a public http(s) URL and hand the model readable text.
//
// The request goes through lib/net/guarded-fetch.ts, the one client for user-supplied URLs: the address rule
// (lib/agents/tools/ip.ts) is checked after DNS resolution on every address and every redirect hop, and the socket
// connects to the exact address that was checked, so DNS rebinding gains nothing.
import type http from "node:http";
import { pipeline, type Readable } from "node:stream";
import zlib from "node:zlib";
import { convert } from "html-to-text";
import { z } from "zod";
import type { WebFetchConfig } from "./config";
import { webFetchWithLastGoodCopy } from "./page-cache";
import { GuardedFetchError, guardedFetch, parseTarget as guardedParseTarget } from "@/lib/net/guarded-fetch";
import { parseAllowList } from "./ip";
import { defineTool, ToolError } from "./types";

export type { ConnectObserver, ResolvedAddress, Resolver } from "@/lib/net/guarded-fetch";

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

const ACCEPT = "text/html,application/xhtml+xml,text/plain;q=0.9,application/json;q=0.9,text/*;q=0.8,*/*;q=0.1";

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
    const res = await guardedFetch(url, {
      headers: { "user-agent": cfg.userAgent, accept: ACCEPT, "accept-encoding": "gzip, deflate, br" },
      allow,
      resolve: cfg.resolve,
      onConnect: cfg.onConnect,
      signal,
      maxRedirects: cfg.maxRedirects,
      purpose: "web_fetch",
    });
    url = new URL(res.url);
    const body = await readBody(res.body, url, cfg.maxBytes, signal);
    const result: WebFetchResult = {
      url: started.href,
      final_url: res.url,
      status: res.status,
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
  } catch (err) {
    if (deadline.aborted) throw new ToolError(`timed out after ${cfg.timeoutMs} ms fetching ${url.href}`, { cause: err });
    if (signal.aborted) throw new ToolError(`fetch of ${url.href} was cancelled`, { cause: err });
    if (err instanceof ToolError) throw err;
    if (err instanceof GuardedFetchError && err.kind !== "network") throw new ToolError(err.message, { cause: err });
    if (err instanceof GuardedFetchError && err.cause) err = err.cause;
    const code = (err as NodeJS.ErrnoException).code;
    throw new ToolError(`fetch of ${url.href} failed: ${code ? `${code} ` : ""}${(err as Error).message}`, { cause: err });
  }
}

/** Parses the URL with the guarded client's rule, as a ToolError the model can read. */
function parseTarget(raw: string): URL {
  try {
    return guardedParseTarget(raw);
  } catch (err) {
    throw new ToolError((err as Error).message);
  }
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
  // With the last good copy of the page when the live fetch fails on an outage (page-cache.ts).
  run: (input, ctx) => webFetchWithLastGoodCopy(ctx.db, input.url, ctx.config.webFetch, { signal: ctx.signal, maxChars: input.max_chars }),
});
