/** A TCP proxy in front of PostgreSQL that can be cut (connections dropped, new ones refused) and restored. */

/** The proxy's address and switches. */
export interface Switch {
  url: string;
  cut(): void;
  restore(): void;
  close(): void;
}

/** Starts a proxy to `target` (a postgres:// URL) on a port of its own. */
export function switchableProxy(target: string): Switch {
  const to = new URL(target);
  let listener: Deno.Listener | null = null;
  const conns = new Set<Deno.Conn>();
  const port = (() => {
    const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const p = (l.addr as Deno.NetAddr).port;
    l.close();
    return p;
  })();
  const drop = (c: Deno.Conn) => {
    conns.delete(c);
    try {
      c.close();
    } catch { /* closed */ }
  };
  const serve = (l: Deno.Listener) => {
    (async () => {
      for await (const client of l) {
        const server = await Deno.connect({ hostname: to.hostname, port: Number(to.port) });
        conns.add(client).add(server);
        const pipe = (a: Deno.Conn, b: Deno.Conn) =>
          a.readable.pipeTo(b.writable).catch(() => {}).finally(() => {
            drop(a);
            drop(b);
          });
        pipe(client, server);
        pipe(server, client);
      }
    })().catch(() => {});
  };
  const open = () => {
    listener = Deno.listen({ hostname: "127.0.0.1", port });
    serve(listener);
  };
  open();
  const url = new URL(target);
  url.hostname = "127.0.0.1";
  url.port = String(port);
  return {
    url: url.toString(),
    cut() {
      listener?.close();
      listener = null;
      for (const c of [...conns]) drop(c);
    },
    restore() {
      if (!listener) open();
    },
    close() {
      this.cut();
    },
  };
}
