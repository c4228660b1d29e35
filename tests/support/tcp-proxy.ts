// A TCP proxy in front of Postgres for fault tests: every connection is forwarded as is, and one connection can be cut
// on the client's side only — the client sees its connection end while the server keeps the session (a break the
// server has not noticed yet), as a network fault or a NAT timeout leaves it.
import net from "node:net";

export interface TcpProxy {
  port: number;
  /** `url` with its host and port replaced by the proxy's. */
  via(url: string): string;
  /** Ends the client's side of the connection whose server side has local port `upstreamPort` (pg_stat_activity's client_port). */
  cutClientSide(upstreamPort: number): boolean;
  /** From now on the connection whose server side has local port `upstreamPort` hears nothing from the server, and
   * does not see the server's side end: a session the server ended whose end never reaches the client. */
  muteServerSide(upstreamPort: number): boolean;
  close(): Promise<void>;
}

export async function startTcpProxy(targetHost: string, targetPort: number): Promise<TcpProxy> {
  const pairs = new Set<{ client: net.Socket; up: net.Socket; cut: boolean; muted: boolean }>();
  const server = net.createServer((client) => {
    const up = net.connect(targetPort, targetHost);
    const pair = { client, up, cut: false, muted: false };
    pairs.add(pair);
    client.on("error", () => {});
    up.on("error", () => {});
    client.pipe(up);
    up.pipe(client);
    client.on("close", () => {
      if (!pair.cut) up.destroy();
    });
    up.on("close", () => {
      pairs.delete(pair);
      if (!pair.muted) client.destroy();
      else mutedClients.add(client);
    });
  });
  const mutedClients = new Set<net.Socket>();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    via(url) {
      const u = new URL(url);
      u.hostname = "127.0.0.1";
      u.port = String(port);
      return u.toString();
    },
    cutClientSide(upstreamPort) {
      for (const p of pairs) {
        if (p.up.localPort !== upstreamPort) continue;
        p.cut = true;
        p.up.unpipe(p.client);
        p.client.unpipe(p.up);
        p.up.resume(); // the server's side stays open, its data dropped
        p.client.destroy();
        return true;
      }
      return false;
    },
    muteServerSide(upstreamPort) {
      for (const p of pairs) {
        if (p.up.localPort !== upstreamPort) continue;
        p.muted = true;
        p.up.unpipe(p.client);
        p.up.resume(); // what the server still sends is dropped
        return true;
      }
      return false;
    },
    async close() {
      for (const c of mutedClients) c.destroy();
      for (const p of pairs) {
        p.client.destroy();
        p.up.destroy();
      }
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
