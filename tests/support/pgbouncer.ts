/**
 * A throwaway PgBouncer (Debian's `pgbouncer`) in transaction pooling in front
 * of a PostgreSQL server, for the tests and benchmarks that check Levelguard
 * through a pooler. Every database of the server is reachable through it.
 */
import { join } from "node:path";

/** A running PgBouncer. */
export interface PgBouncer {
  port: number;
  /** `url` with its host and port swapped for the pooler's. */
  through(url: string): string;
  stop(): Promise<void>;
}

const BINARIES = ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"];

/** The pgbouncer binary, or null when it is not installed. */
export function findPgBouncer(): string | null {
  return BINARIES.find((path) => {
    try {
      return Deno.statSync(path).isFile;
    } catch {
      return false;
    }
  }) ?? null;
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Starts PgBouncer in transaction pooling in front of the server `url` points at (its user and password). */
export async function startPgBouncer(
  bin: string,
  url: string,
  options: { poolSize?: number } = {},
): Promise<PgBouncer> {
  const server = new URL(url);
  const dir = await Deno.makeTempDir({ prefix: "levelguard-pgbouncer-" });
  const port = freePort();
  const user = decodeURIComponent(server.username || "postgres");
  const password = decodeURIComponent(server.password);
  await Deno.writeTextFile(join(dir, "userlist.txt"), `"${user}" "${password.replaceAll('"', '""')}"\n`);
  await Deno.writeTextFile(
    join(dir, "pgbouncer.ini"),
    [
      "[databases]",
      `* = host=${server.hostname} port=${server.port || 5432}`,
      "[pgbouncer]",
      "listen_addr = 127.0.0.1",
      `listen_port = ${port}`,
      "unix_socket_dir =",
      "auth_type = trust",
      `auth_file = ${join(dir, "userlist.txt")}`,
      "pool_mode = transaction",
      "max_client_conn = 1000",
      `default_pool_size = ${options.poolSize ?? 40}`,
      `logfile = ${join(dir, "pgbouncer.log")}`,
      "log_connections = 0",
      "log_disconnections = 0",
    ].join("\n") + "\n",
  );
  // PgBouncer will not run as root.
  const asPostgres = Deno.uid() === 0;
  if (asPostgres) {
    await new Deno.Command("chown", { args: ["-R", "postgres:postgres", dir] }).output();
  }
  const cmd = asPostgres ? ["runuser", "-u", "postgres", "--", bin] : [bin];
  const child = new Deno.Command(cmd[0], {
    args: [...cmd.slice(1), join(dir, "pgbouncer.ini")],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  // Drained as it comes (an unread pipe fills up and stalls pgbouncer on a long run); the tail is
  // kept for a start-up failure that happens before the log file is open.
  let stderrTail = "";
  const stopDraining = new AbortController();
  const drained = child.stderr.pipeThrough(new TextDecoderStream()).pipeTo(
    new WritableStream({ write: (text) => void (stderrTail = (stderrTail + text).slice(-2000)) }),
    { signal: stopDraining.signal },
  ).catch(() => {});
  // Ready when it accepts connections.
  for (let i = 0;; i++) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      break;
    } catch {
      if (i > 100) {
        child.kill();
        stopDraining.abort();
        const log = await Deno.readTextFile(join(dir, "pgbouncer.log")).catch(() => "");
        const said = `${log}\n${stderrTail}`.trim().split("\n").slice(-3).join(" ");
        throw new Error(`pgbouncer did not start: ${said}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return {
    port,
    through(target: string) {
      const u = new URL(target);
      u.hostname = "127.0.0.1";
      u.port = String(port);
      return u.toString();
    },
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch { /* gone */ }
      await child.status;
      stopDraining.abort();
      await drained;
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}
