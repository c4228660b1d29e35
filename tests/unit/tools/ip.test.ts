// The address rule of web_fetch: public unicast only, IPv6 forms judged by the IPv4 address they carry.
import { describe, expect, test } from "vitest";
import { classifyAddress, parseAllowList, parseIp } from "../../../lib/agents/tools/ip";

describe("classifyAddress", () => {
  test.each([
    ["127.0.0.1", "loopback"],
    ["127.255.255.254", "loopback"],
    ["10.1.2.3", "private (RFC 1918)"],
    ["172.31.255.255", "private (RFC 1918)"],
    ["192.168.0.1", "private (RFC 1918)"],
    ["100.64.0.1", "carrier-grade NAT (RFC 6598)"],
    ["100.100.100.200", "carrier-grade NAT (RFC 6598)"], // Alibaba Cloud metadata
    ["169.254.169.254", "cloud metadata endpoint"],
    ["169.254.1.1", "link-local"],
    ["168.63.129.16", "cloud metadata endpoint"],
    ["0.0.0.0", "unspecified / 'this network'"],
    ["224.0.0.251", "multicast"],
    ["239.255.255.250", "multicast"],
    ["255.255.255.255", "broadcast"],
    ["240.0.0.1", "reserved"],
    ["192.0.2.1", "documentation (TEST-NET-1)"],
    ["198.51.100.7", "documentation (TEST-NET-2)"],
    ["203.0.113.9", "documentation (TEST-NET-3)"],
    ["198.19.255.255", "benchmarking (RFC 2544)"],
    ["192.0.0.170", "IETF protocol assignments"],
    ["::1", "loopback"],
    ["::", "unspecified"],
    ["[::1]", "loopback"],
    ["::ffff:127.0.0.1", "IPv4-mapped loopback"],
    ["::ffff:7f00:1", "IPv4-mapped loopback"],
    ["0:0:0:0:0:ffff:a00:1", "IPv4-mapped private (RFC 1918)"],
    ["::ffff:169.254.169.254", "IPv4-mapped cloud metadata endpoint"],
    ["::ffff:0:10.0.0.1", "IPv4-translated private (RFC 1918)"],
    ["::127.0.0.1", "IPv4-compatible loopback"],
    ["::8.8.8.8", "IPv4-compatible IPv6 (deprecated)"],
    ["64:ff9b::127.0.0.1", "NAT64 loopback"],
    ["64:ff9b:1::1", "local-use NAT64"],
    ["2002:7f00:1::1", "6to4 loopback"],
    ["2002:a9fe:a9fe::", "6to4 cloud metadata endpoint"],
    ["fd00:ec2::254", "cloud metadata endpoint"],
    ["fd12:3456::1", "unique-local"],
    ["fe80::1%eth0", "link-local"],
    ["fec0::1", "site-local"],
    ["ff02::1", "multicast"],
    ["100::1", "discard-only"],
    ["2001:db8::1", "documentation"],
    ["3fff::1", "documentation"],
    ["2001::1", "IETF protocol assignments (Teredo, benchmarking, ORCHID)"],
    ["2001:2::1", "IETF protocol assignments (Teredo, benchmarking, ORCHID)"],
    ["4000::1", "not global unicast IPv6"],
    ["not-an-ip", "not an IP address"],
  ])("%s is refused (%s)", (address, reason) => {
    expect(classifyAddress(address)).toEqual({ blocked: true, address, reason });
  });

  test.each(["8.8.8.8", "93.184.216.34", "1.1.1.1", "172.32.0.1", "100.128.0.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::8.8.8.8", "2002:808:808::1", "2a00:1450:4001::200e"])(
    "%s is public",
    (address) => {
      expect(classifyAddress(address)).toEqual({ blocked: false, address });
    },
  );
});

describe("parseIp", () => {
  test("IPv4, IPv6 with ::, an IPv4 tail, brackets and a zone", () => {
    expect(Array.from(parseIp("10.0.0.1")!)).toEqual([10, 0, 0, 1]);
    expect(Array.from(parseIp("[::ffff:1.2.3.4]")!)).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 1, 2, 3, 4]);
    expect(Array.from(parseIp("fe80::1%lo")!)).toEqual([0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    expect(Array.from(parseIp("1:2:3:4:5:6:7:8")!)).toEqual([0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 8]);
    expect(parseIp("1.2.3")).toBeNull();
    expect(parseIp("example.com")).toBeNull();
  });
});

describe("parseAllowList", () => {
  const allow = parseAllowList(["intranet.example", "*.corp.example", "10.0.0.0/8", "127.0.0.1", "[::1]", "fd00::/8"]);

  test("host names: exact and wildcard suffix, case and trailing dot ignored", () => {
    expect(allow.allowsHost("intranet.example")).toBe(true);
    expect(allow.allowsHost("INTRANET.example.")).toBe(true);
    expect(allow.allowsHost("wiki.corp.example")).toBe(true);
    expect(allow.allowsHost("corp.example")).toBe(false);
    expect(allow.allowsHost("evilcorp.example")).toBe(false);
    expect(allow.allowsHost("intranet.example.evil.com")).toBe(false);
  });

  test("addresses and CIDRs, IPv4-mapped IPv6 matching its IPv4 entry", () => {
    expect(allow.allowsAddress("10.200.0.1")).toBe(true);
    expect(allow.allowsAddress("::ffff:10.200.0.1")).toBe(true);
    expect(allow.allowsAddress("127.0.0.1")).toBe(true);
    expect(allow.allowsAddress("127.0.0.2")).toBe(false);
    expect(allow.allowsAddress("::1")).toBe(true);
    expect(allow.allowsAddress("fd12::1")).toBe(true);
    expect(allow.allowsAddress("169.254.169.254")).toBe(false);
  });

  test("an entry that is neither a host, an address nor a CIDR is a configuration error", () => {
    expect(() => parseAllowList(["http://x/"])).toThrow(/allow-list entry/);
    expect(() => parseAllowList(["10.0.0.0/33"])).toThrow(/bad CIDR/);
    expect(() => parseAllowList(["127.0.0.1:0"])).toThrow(/bad port/);
    expect(() => parseAllowList(["127.0.0.1:70000"])).toThrow(/bad port/);
    expect(() => parseAllowList(["10.0.0.0/8:443"])).toThrow(/CIDR takes no port/);
  });

  test("an entry with :port opens only that port (a page the agent reads cannot reach the box's other services)", () => {
    // Before, `127.0.0.1:4000` was refused as a configuration error, so a test page on loopback meant allowing
    // 127.0.0.1 whole — the local engine's run list and the double's call log (other tasks' data) included.
    const scoped = parseAllowList(["127.0.0.1:4000", "[::1]:4000", "intranet.example:8080", "*.lab.example:443"]);
    expect(scoped.allowsAddress("127.0.0.1", 4000)).toBe(true);
    expect(scoped.allowsAddress("::ffff:127.0.0.1", 4000)).toBe(true);
    expect(scoped.allowsAddress("127.0.0.1", 8288)).toBe(false);
    expect(scoped.allowsAddress("127.0.0.1")).toBe(false); // no port said: a scoped entry never matches
    expect(scoped.allowsAddress("::1", 4000)).toBe(true);
    expect(scoped.allowsAddress("::1", 4001)).toBe(false);
    expect(scoped.allowsHost("intranet.example", 8080)).toBe(true);
    expect(scoped.allowsHost("intranet.example", 80)).toBe(false);
    expect(scoped.allowsHost("wiki.lab.example", 443)).toBe(true);
    expect(scoped.allowsHost("wiki.lab.example", 8443)).toBe(false);
    // Without a port an entry opens every port, as before.
    expect(allow.allowsAddress("127.0.0.1", 8288)).toBe(true);
    expect(allow.allowsHost("intranet.example", 9999)).toBe(true);
    // The same host both ways: the unscoped entry wins.
    expect(parseAllowList(["intranet.example:8080", "intranet.example"]).allowsHost("intranet.example", 80)).toBe(true);
  });
});
