// Which addresses web_fetch may connect to. The rule is "public unicast only": IPv4 minus the special-purpose
// ranges (IANA's IPv4 special-purpose registry plus cloud metadata endpoints), and for IPv6 only global unicast
// (2000::/3) minus its special-purpose blocks. IPv6 forms that carry an IPv4 address (mapped, compatible,
// translated, NAT64, 6to4) are judged by the IPv4 address they carry, so `::ffff:127.0.0.1` is loopback.
import { isIP, isIPv4, isIPv6 } from "node:net";

export type Verdict = { blocked: false; address: string } | { blocked: true; address: string; reason: string };

interface Range {
  bytes: Uint8Array;
  prefix: number;
  reason: string;
}

const V4_BLOCKED: Range[] = [
  ["0.0.0.0/8", "unspecified / 'this network'"],
  ["10.0.0.0/8", "private (RFC 1918)"],
  ["100.64.0.0/10", "carrier-grade NAT (RFC 6598)"],
  ["127.0.0.0/8", "loopback"],
  ["169.254.169.254/32", "cloud metadata endpoint"],
  ["169.254.0.0/16", "link-local"],
  ["172.16.0.0/12", "private (RFC 1918)"],
  ["192.0.0.0/24", "IETF protocol assignments"],
  ["192.0.2.0/24", "documentation (TEST-NET-1)"],
  ["192.31.196.0/24", "AS112 service"],
  ["192.52.193.0/24", "AMT"],
  ["192.88.99.0/24", "6to4 relay anycast"],
  ["192.168.0.0/16", "private (RFC 1918)"],
  ["192.175.48.0/24", "AS112 service"],
  ["198.18.0.0/15", "benchmarking (RFC 2544)"],
  ["198.51.100.0/24", "documentation (TEST-NET-2)"],
  ["203.0.113.0/24", "documentation (TEST-NET-3)"],
  ["224.0.0.0/4", "multicast"],
  ["255.255.255.255/32", "broadcast"],
  ["240.0.0.0/4", "reserved"],
  // Azure's host platform address (instance metadata for some services); reachable only from inside Azure.
  ["168.63.129.16/32", "cloud metadata endpoint"],
].map(([cidr, reason]) => parseRange(cidr!, reason!));

// Inside 2000::/3 (everything outside it is refused as non-global).
const V6_BLOCKED: Range[] = [
  ["2001::/23", "IETF protocol assignments (Teredo, benchmarking, ORCHID)"],
  ["2001:db8::/32", "documentation"],
  ["3fff::/20", "documentation"],
].map(([cidr, reason]) => parseRange(cidr!, reason!));

const V6_NON_GLOBAL: Range[] = [
  ["::1/128", "loopback"],
  ["::/128", "unspecified"],
  ["fd00:ec2::254/128", "cloud metadata endpoint"],
  ["fc00::/7", "unique-local"],
  ["fe80::/10", "link-local"],
  ["fec0::/10", "site-local"],
  ["ff00::/8", "multicast"],
  ["100::/64", "discard-only"],
  ["64:ff9b:1::/48", "local-use NAT64"],
].map(([cidr, reason]) => parseRange(cidr!, reason!));

/** Judges one IP address (v4 or v6, a zone id allowed). Anything unparsable is blocked. */
export function classifyAddress(address: string): Verdict {
  const bytes = parseIp(address);
  if (!bytes) return { blocked: true, address, reason: "not an IP address" };
  if (bytes.length === 4) return classifyV4(bytes, address, "");

  const embedded = embeddedV4(bytes);
  if (embedded) {
    if (embedded.form === "IPv4-compatible") {
      // Deprecated (RFC 4291) and never routed, so refused whatever it carries; :: and ::1 are caught below with
      // their proper names.
      if (!isAllZero(bytes.subarray(0, 15))) {
        const inner = classifyV4(embedded.v4, address, "IPv4-compatible");
        return inner.blocked ? inner : { blocked: true, address, reason: "IPv4-compatible IPv6 (deprecated)" };
      }
    } else {
      return classifyV4(embedded.v4, address, embedded.form);
    }
  }
  for (const r of V6_NON_GLOBAL) if (inRange(bytes, r)) return { blocked: true, address, reason: r.reason };
  if (!inRange(bytes, V6_GLOBAL)) return { blocked: true, address, reason: "not global unicast IPv6" };
  for (const r of V6_BLOCKED) if (inRange(bytes, r)) return { blocked: true, address, reason: r.reason };
  return { blocked: false, address };
}

const V6_GLOBAL = parseRange("2000::/3", "global unicast");

function classifyV4(v4: Uint8Array, address: string, prefix: string): Verdict {
  for (const r of V4_BLOCKED) {
    if (inRange(v4, r)) return { blocked: true, address, reason: prefix ? `${prefix} ${r.reason}` : r.reason };
  }
  return { blocked: false, address };
}

type Embedded = { v4: Uint8Array; form: string };

/** The IPv4 address carried inside an IPv6 address, if it is one of the forms that carry one. */
function embeddedV4(b: Uint8Array): Embedded | null {
  const zeros = (from: number, to: number) => isAllZero(b.subarray(from, to));
  // ::ffff:a.b.c.d (mapped)
  if (zeros(0, 10) && b[10] === 0xff && b[11] === 0xff) return { v4: b.subarray(12), form: "IPv4-mapped" };
  // ::ffff:0:a.b.c.d (SIIT translated, RFC 2765)
  if (zeros(0, 8) && b[8] === 0xff && b[9] === 0xff && zeros(10, 12)) return { v4: b.subarray(12), form: "IPv4-translated" };
  // ::a.b.c.d (compatible)
  if (zeros(0, 12)) return { v4: b.subarray(12), form: "IPv4-compatible" };
  // 64:ff9b::a.b.c.d (well-known NAT64 prefix, RFC 6052)
  if (b[0] === 0x00 && b[1] === 0x64 && b[2] === 0xff && b[3] === 0x9b && zeros(4, 12)) {
    return { v4: b.subarray(12), form: "NAT64" };
  }
  // 2002:aabb:ccdd::/48 (6to4)
  if (b[0] === 0x20 && b[1] === 0x02) return { v4: b.subarray(2, 6), form: "6to4" };
  return null;
}

// ---------------------------------------------------------------------------------------------------------------
// Parsing and matching

/** 4 bytes for IPv4, 16 for IPv6 (brackets and a zone id are accepted); null if not an address. */
export function parseIp(input: string): Uint8Array | null {
  let s = input.trim();
  if (s.startsWith("[") && s.endsWith("]")) s = s.slice(1, -1);
  const zone = s.indexOf("%");
  if (zone >= 0) s = s.slice(0, zone);
  if (isIPv4(s)) return new Uint8Array(s.split(".").map(Number));
  if (!isIPv6(s)) return null;

  let tail: number[] = [];
  const lastColon = s.lastIndexOf(":");
  if (s.slice(lastColon + 1).includes(".")) {
    tail = s.slice(lastColon + 1).split(".").map(Number);
    s = `${s.slice(0, lastColon + 1)}0:0`; // placeholder groups, replaced below
  }
  const [head, rest] = s.split("::") as [string, string | undefined];
  const groups = (part: string) => (part ? part.split(":").map((g) => parseInt(g, 16)) : []);
  const left = groups(head);
  const right = rest === undefined ? [] : groups(rest);
  const fill = rest === undefined ? 0 : 8 - left.length - right.length;
  const all = [...left, ...new Array<number>(fill).fill(0), ...right];
  if (all.length !== 8) return null;
  const out = new Uint8Array(16);
  all.forEach((g, i) => {
    out[i * 2] = g >> 8;
    out[i * 2 + 1] = g & 0xff;
  });
  if (tail.length === 4) out.set(tail, 12);
  return out;
}

function parseRange(cidr: string, reason: string): Range {
  const [addr, bits] = cidr.split("/") as [string, string | undefined];
  const bytes = parseIp(addr);
  if (!bytes) throw new Error(`bad CIDR ${cidr}`);
  const prefix = bits === undefined ? bytes.length * 8 : Number(bits);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > bytes.length * 8) throw new Error(`bad CIDR ${cidr}`);
  return { bytes, prefix, reason };
}

function inRange(bytes: Uint8Array, r: Range): boolean {
  if (bytes.length !== r.bytes.length) return false;
  let bits = r.prefix;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((bytes[i]! & mask) !== (r.bytes[i]! & mask)) return false;
  }
  return true;
}

function isAllZero(b: Uint8Array): boolean {
  return b.every((x) => x === 0);
}

// ---------------------------------------------------------------------------------------------------------------
// The allow-list

export interface AllowList {
  /** True when the host name itself is allow-listed for this port (every address it resolves to is then allowed). */
  allowsHost(hostname: string, port?: number): boolean;
  /** True when the address is in an allow-listed address or CIDR for this port (IPv4-mapped IPv6 matches its IPv4
   * entry). */
  allowsAddress(address: string, port?: number): boolean;
}

/**
 * NIGHTSHIFT_FETCH_ALLOW's entries: a host name, `*.suffix`, an IP, a CIDR — each but a CIDR optionally with
 * `:port` (IPv6 in brackets: `[::1]:4000`), which then opens only that port. An entry without a port opens every
 * port of that host: `127.0.0.1` alone lets a page the agent reads send it to every local service (the local
 * engine's run list, the double's call log, other tasks' data), so name the port. A port-scoped entry matches only
 * when the caller says which port it connects to.
 */
export function parseAllowList(entries: readonly string[]): AllowList {
  const hosts = new Map<string, Set<number> | "any">();
  const suffixes: { suffix: string; port: number | null }[] = [];
  const ranges: { range: Range; port: number | null }[] = [];
  const addHost = (h: string, port: number | null) => {
    const had = hosts.get(h);
    if (had === "any" || port === null) return void hosts.set(h, "any");
    hosts.set(h, (had ?? new Set<number>()).add(port));
  };
  const portOk = (allowed: number | null, port: number | undefined) => allowed === null || allowed === port;
  for (const raw of entries) {
    let entry = raw.trim().toLowerCase();
    if (!entry) continue;
    let port: number | null = null;
    // `host:port`, `1.2.3.4:port`, `[v6]:port` (a bare IPv6 address has colons of its own and takes no port).
    const withPort = /^(\[[^\]]+\]|[^:[\]]+):(\d{1,5})$/.exec(entry);
    if (withPort) {
      port = Number(withPort[2]);
      if (port < 1 || port > 65535) throw new Error(`web_fetch allow-list entry ${raw} has a bad port`);
      entry = withPort[1]!;
      if (entry.includes("/")) throw new Error(`web_fetch allow-list entry ${raw}: a CIDR takes no port`);
    }
    const [addr] = entry.split("/") as [string];
    if (parseIp(addr)) {
      ranges.push({ range: parseRange(entry.replace(/^\[(.*)\](\/\d+)?$/, "$1$2"), "allow-listed"), port });
    } else if (entry.startsWith("*.")) {
      suffixes.push({ suffix: normaliseHost(entry.slice(1)), port });
    } else if (/^[a-z0-9.-]+$/.test(entry)) {
      addHost(normaliseHost(entry), port);
    } else {
      throw new Error(`web_fetch allow-list entry ${raw} is neither a host name, an address nor a CIDR (each optionally with :port)`);
    }
  }
  return {
    allowsHost(hostname, port) {
      const h = normaliseHost(hostname);
      const ports = hosts.get(h);
      if (ports === "any" || (ports && port !== undefined && ports.has(port))) return true;
      return suffixes.some((s) => h.endsWith(s.suffix) && h.length > s.suffix.length && portOk(s.port, port));
    },
    allowsAddress(address, port) {
      const bytes = parseIp(address);
      if (!bytes) return false;
      const candidates = [bytes];
      const embedded = bytes.length === 16 ? embeddedV4(bytes) : null;
      if (embedded?.form === "IPv4-mapped") candidates.push(embedded.v4);
      return ranges.some((r) => portOk(r.port, port) && candidates.some((c) => inRange(c, r.range)));
    },
  };
}

function normaliseHost(h: string): string {
  return h.toLowerCase().replace(/\.$/, "");
}

/** The family of an IP literal (4 or 6), or 0 for a host name. Brackets are accepted. */
export function ipFamily(host: string): 0 | 4 | 6 {
  return isIP(host.replace(/^\[(.*)\]$/, "$1")) as 0 | 4 | 6;
}
