/** A throwaway PostgreSQL cluster in a temp directory (initdb + pg_ctl), for tests and benchmarks. */
import { join } from "node:path";

/** A running cluster and how to stop it. */
export interface Cluster {
  url: string;
  /** Stops the server and removes its files. */
  stop(): Promise<void>;
  /** Stops the server (`pg_ctl stop -m fast`: sessions are ended) and keeps its data. */
  halt(): Promise<void>;
  /** Kills the server (`pg_ctl stop -m immediate`: no shutdown checkpoint, as a crash) and keeps its data. */
  crash(): Promise<void>;
  /** Starts it again on the same port and data. */
  resume(): Promise<void>;
}

const BIN_DIRS = [
  "/usr/lib/postgresql/17/bin",
  "/usr/lib/postgresql/16/bin",
  "/usr/lib/postgresql/15/bin",
  "/usr/lib/postgresql/14/bin",
];

/** The directory holding initdb and pg_ctl, or null when PostgreSQL is not installed. */
export async function findPgBin(): Promise<string | null> {
  for (const dir of BIN_DIRS) {
    try {
      await Deno.stat(join(dir, "initdb"));
      return dir;
    } catch { /* next */ }
  }
  return null;
}

async function run(cmd: string[], asPostgres: boolean) {
  const [bin, ...args] = asPostgres ? ["runuser", "-u", "postgres", "--", ...cmd] : cmd;
  const out = await new Deno.Command(bin, { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`${cmd[0]} failed: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Starts a cluster (as the `postgres` user when running as root); settings trade durability for speed. */
export async function startCluster(bin: string, settings: Record<string, string> = {}): Promise<Cluster> {
  const asPostgres = Deno.uid() === 0;
  const dir = await Deno.makeTempDir({ prefix: "levelguard-pg-" });
  if (asPostgres) await run(["chown", "postgres:postgres", dir], false);
  const data = join(dir, "data");
  await run(
    [join(bin, "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale"],
    asPostgres,
  );
  const port = freePort();
  const options = {
    listen_addresses: "127.0.0.1",
    port: String(port),
    unix_socket_directories: dir,
    max_connections: "300",
    shared_buffers: "256MB",
    ...settings,
  };
  const o = Object.entries(options).map(([k, v]) => `-c ${k}=${v}`).join(" ");
  return await controlled(bin, dir, port, o, asPostgres);
}

/** Starts the server of `dir`/data with `-o options` and returns how to reach, stop and resume it. */
async function controlled(
  bin: string,
  dir: string,
  port: number,
  options: string,
  asPostgres: boolean,
): Promise<Cluster> {
  const data = join(dir, "data");
  const pgCtl = (...args: string[]) => run([join(bin, "pg_ctl"), "-D", data, ...args], asPostgres);
  const start = () => pgCtl("-o", options, "-l", join(dir, "log"), "-w", "start");
  const halt = () => pgCtl("-m", "fast", "-w", "stop");
  const crash = () => pgCtl("-m", "immediate", "-w", "stop");
  await start();
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    async stop() {
      await halt().catch(() => {});
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
    halt,
    crash,
    resume: start,
  };
}

/**
 * A streaming replica of the cluster at `primaryUrl` (`pg_basebackup -R`: it follows the primary
 * as a hot standby), on a port of its own, in a temp directory. initdb's trust authentication
 * lets local replication connections in.
 */
export async function startReplica(
  bin: string,
  primaryUrl: string,
  settings: Record<string, string> = {},
): Promise<Cluster> {
  const asPostgres = Deno.uid() === 0;
  const primary = new URL(primaryUrl);
  const dir = await Deno.makeTempDir({ prefix: "levelguard-replica-" });
  if (asPostgres) await run(["chown", "postgres:postgres", dir], false);
  const data = join(dir, "data");
  await run([
    join(bin, "pg_basebackup"),
    "-h",
    primary.hostname,
    "-p",
    primary.port,
    "-U",
    "postgres",
    "-D",
    data,
    "-R",
    "-X",
    "stream",
    "--checkpoint=fast",
  ], asPostgres);
  const port = freePort();
  // A hot standby needs at least the primary's max_connections (startCluster sets 300).
  const o =
    `-c port=${port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=${dir} -c hot_standby=on ` +
    "-c max_connections=300" + Object.entries(settings).map(([k, v]) => ` -c ${k}=${v}`).join("");
  return await controlled(bin, dir, port, o, asPostgres);
}
