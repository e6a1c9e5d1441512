/**
 * Peers that are not PostgreSQL, on 127.0.0.1: what a DATABASE_URL with a wrong port reaches. A
 * listener that accepts and never answers, one that accepts and hangs up at once, and an HTTP server.
 */

/** One peer: what it is and where. */
export interface Peer {
  name: string;
  port: number;
}

/** Starts the three peers; `close()` stops them and drops what they hold. */
export function notPostgresPeers(): { peers: Peer[]; close(): Promise<void> } {
  const held = new Set<Deno.Conn>();
  const silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const hangUp = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const loops = [
    (async () => {
      for await (const conn of silent) held.add(conn);
    })().catch(() => {}),
    (async () => {
      for await (const conn of hangUp) conn.close();
    })().catch(() => {}),
  ];
  const http = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () => new Response("<h1>It works!</h1>", { headers: { "content-type": "text/html" } }),
  );
  const port = (l: Deno.Listener) => (l.addr as Deno.NetAddr).port;
  return {
    peers: [
      { name: "a TCP listener that never answers", port: port(silent) },
      { name: "a TCP listener that hangs up at once", port: port(hangUp) },
      { name: "an HTTP server", port: http.addr.port },
    ],
    async close() {
      silent.close();
      hangUp.close();
      for (const conn of held) {
        try {
          conn.close();
        } catch { /* closed by the client */ }
      }
      await Promise.all(loops);
      await http.shutdown();
    },
  };
}
